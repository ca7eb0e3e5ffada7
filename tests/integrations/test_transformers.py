from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import runstack  # noqa: E402

from .launch import torchrun  # noqa: E402


@pytest.mark.slow
def test_torchrun_two_processes_give_one_run(store_dir):
    torchrun(store_dir, "transformers_train.py")
    (run,) = runstack.Api(store_dir).runs()
    assert run.status == "finished" and run.world_size == 2
    # 64 samples, batch 8, 2 ranks -> 4 steps per epoch, 2 epochs; every step logged once.
    losses = run.history(keys=["train/loss"])
    assert losses["_step"].tolist() == list(range(1, 9))
    assert run.history(keys=["eval/loss"])["_step"].tolist() == [4, 8]
    assert run.summary["global_step"] == 8 and run.config["trainer"]["learning_rate"] == 1e-3


def test_user_run_is_not_finished_and_args_rank_is_used(store_dir, tmp_path, monkeypatch):
    from transformers import TrainingArguments

    from runstack.integrations.transformers import RunstackCallback

    run = runstack.init(project="mine")
    callback = RunstackCallback(run=run)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)

    class State:
        global_step, best_metric, best_model_checkpoint = 3, None, None

    callback.on_log(args, State(), None, logs={"loss": 0.5, "learning_rate": 1e-3, "note": "text"})
    evaluation = {"eval_loss": 0.4, "eval_runtime": 0.1, "eval_samples_per_second": 80.0, "epoch": 1.0}
    callback.on_log(args, State(), None, logs=evaluation)  # Trainer.evaluate() logs, then calls on_evaluate
    callback.on_evaluate(args, State(), None, metrics=evaluation)
    callback.on_train_end(args, State(), None)
    assert run.status == "running"
    frame = run.history()
    assert frame["train/loss"].dropna().tolist() == [0.5] and frame["eval/loss"].dropna().tolist() == [0.4]
    assert frame["_step"].tolist() == [3] and "train/epoch" not in frame and "eval/epoch" not in frame
    assert run.summary["note"] == "text" and run.summary["global_step"] == 3
    run.finish()
