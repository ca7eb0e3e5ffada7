"""The Transformers callback as users drive it (the behaviours of transformers'
``test_trainer_callback.py`` and ``test_trainer_hyperparameter.py``, on our callback)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

import runstack  # noqa: E402
from runstack.integrations.transformers import RunstackCallback  # noqa: E402


def _samples(n=16):
    gen = torch.Generator().manual_seed(0)
    return [{"input_ids": t, "labels": t} for t in torch.randint(0, 64, (n, 8), generator=gen)]


def _model():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=16))


def _args(tmp_path, **kwargs):
    options = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, per_device_eval_batch_size=8,
                   num_train_epochs=1, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                   disable_tqdm=True, seed=0)  # fmt: skip
    options.update(kwargs)
    return TrainingArguments(**options)


@pytest.mark.slow
def test_train_evaluate_with_prefix_predict_and_train_again_use_one_run(store_dir, tmp_path):
    callback = RunstackCallback(project="nlp")
    trainer = Trainer(model=_model(), args=_args(tmp_path), train_dataset=_samples(), eval_dataset=_samples(8),
                      callbacks=[callback])  # fmt: skip
    trainer.train()
    api = runstack.Api(store_dir)
    assert api.run(callback._owned.run_id).status == "finished"
    trainer.evaluate()
    trainer.evaluate(metric_key_prefix="test")
    trainer.predict(_samples(8), metric_key_prefix="holdout")
    trainer.train()
    (view,) = api.runs()
    frame = view.history()
    assert view.status == "finished"
    assert frame["eval/loss"].notna().sum() == 1 and frame["test/loss"].notna().sum() == 1
    assert frame["holdout/loss"].notna().sum() == 1
    assert not [c for c in frame.columns if c.startswith("train/test_") or c.startswith("eval/test")]
    assert frame["train/loss"].notna().sum() == 4  # two trainings of two steps


@pytest.mark.slow
def test_hyperparameter_search_gives_one_named_grouped_run_per_trial(store_dir, tmp_path):
    pytest.importorskip("optuna")
    callback = RunstackCallback(project="hp")
    trainer = Trainer(model_init=_model, args=_args(tmp_path, eval_strategy="epoch", run_name="search"),
                      train_dataset=_samples(), eval_dataset=_samples(8), callbacks=[callback])  # fmt: skip

    def space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)}

    best = trainer.hyperparameter_search(hp_space=space, backend="optuna", n_trials=3, direction="minimize",
                                         hp_name=lambda trial: f"lr-trial-{trial.number}")  # fmt: skip
    views = runstack.Api(store_dir).runs(order="created_at")
    assert [v.name for v in views] == ["lr-trial-0", "lr-trial-1", "lr-trial-2"]
    assert {v.group for v in views} == {"search"} and {v.status for v in views} == {"finished"}
    lrs = [v.config["learning_rate"] for v in views]
    assert len(set(lrs)) == 3 and best.hyperparameters["learning_rate"] in lrs
    assert all(v.history()["eval/loss"].notna().sum() == 1 for v in views)


@pytest.mark.slow
def test_report_to_runstack_by_name(store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNSTACK_PROJECT", "by-name")
    trainer = Trainer(model=_model(), args=_args(tmp_path, report_to="runstack"), train_dataset=_samples())
    assert any(isinstance(cb, RunstackCallback) for cb in trainer.callback_handler.callbacks)
    trainer.train()
    (view,) = runstack.Api(store_dir).runs()
    assert view.project == "by-name" and view.status == "finished" and view.history()["train/loss"].notna().all()
