"""Hugging Face Transformers: ``Trainer(..., callbacks=[RunstackCallback(project="nlp")])``.

Importing this module also registers the name, so ``TrainingArguments(report_to="runstack")``
works after ``import runstack.integrations.transformers``.
"""

from __future__ import annotations

import os
from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require, split_numeric

transformers = require("transformers", "transformers")
_integrations = require("transformers.integrations.integration_utils", "transformers")

# Logged once at the end of training: they belong in the summary, not the history.
TRAIN_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


def _evaluation_prefixes(keys: Any) -> set[str]:
    """The ``metric_key_prefix`` of each evaluation in a log dict (``eval``, ``test``, ...):
    ``Trainer.evaluate`` and ``predict`` always report ``<prefix>_runtime`` and
    ``<prefix>_samples_per_second``."""
    keys = set(keys)
    found = {k.removesuffix("_runtime") for k in keys if k.endswith("_runtime")}
    found = {p for p in found if f"{p}_samples_per_second" in keys} - {"train"}
    if any(k.startswith("eval_") for k in keys):
        found.add("eval")
    return found


class RunstackCallback(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
    """Training arguments and model config into config, train metrics as ``train/<name>`` and
    evaluation metrics as ``<prefix>/<name>`` (``eval/``, ``test/``, ...) at ``state.global_step``.

    Args:
        run: an existing run (left open); otherwise one is started at train begin, finished
            at train end, and opened again by a later ``evaluate()``/``predict()``/``train()``.
            Under ``hyperparameter_search`` every trial gets its own run, named after the trial
            and grouped (``args.run_name`` or a shared group).
        log_model: log every checkpoint the Trainer saves as a "model" artifact.
        **init_kwargs: passed to ``runstack.init`` (project, name, tags, ...).
    """

    def __init__(self, run: Any = None, log_model: bool = False, **init_kwargs: Any) -> None:
        self._owned = OwnedRun(run, init_kwargs, "transformers")
        self.log_model = log_model
        self._trials = 0

    def _run(self, args: Any) -> Any:
        return self._owned.get(rank_hint=(args.process_index, args.world_size))

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.is_hyper_param_search:
            self._trials += 1
            name = state.trial_name or f"trial-{self._trials}"
            group = self._owned.init_kwargs.get("group") or args.run_name or self._owned.family
            run = self._owned.new_run((args.process_index, args.world_size), name=name, group=group)
        else:
            run = self._run(args)
        config: dict[str, Any] = {"trainer": plain_config(args.to_dict())}
        if model is not None and getattr(model, "config", None) is not None:
            config["model"] = plain_config(model.config.to_dict())
            config["model_num_parameters"] = sum(p.numel() for p in model.parameters())
        if state.trial_params:
            config.update(plain_config(state.trial_params))
        run.config.update(config)
        self._owned.begin("transformers Trainer.train()")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        run = self._run(args)
        numbers, other = split_numeric(logs or {})
        prefixes = _evaluation_prefixes(numbers)
        data = {}
        for key, value in numbers.items():
            prefix = next((p for p in prefixes if key.startswith(p + "_")), None)
            if prefix is not None:
                data[f"{prefix}/{key[len(prefix) + 1 :]}"] = value
            elif key == "epoch" and prefixes:
                continue  # the epoch of an evaluation is the training's, logged with train/
            elif key in TRAIN_SUMMARY_KEYS:
                run.summary[key] = value
            else:
                data[f"train/{key}"] = value
        if data:
            run.log(data, step=state.global_step)
        for key, value in other.items():
            run.summary[key] = plain_config(value)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:  # fmt: skip
        # predict() reports its metrics only here (evaluate() goes through on_log).
        numbers, _ = split_numeric(metrics or {})
        prefixes = _evaluation_prefixes(numbers) or {"test"}
        renamed = {}
        for key, value in numbers.items():
            prefix = next((p for p in prefixes if key.startswith(p + "_")), None)
            renamed[f"{prefix}/{key[len(prefix) + 1 :]}" if prefix else f"test/{key}"] = value
        if renamed:
            self._run(args).log(renamed, step=state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.log_model or not state.is_world_process_zero:
            return
        import runstack

        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            run = self._run(args)
            artifact = runstack.Artifact(f"model-{run.id}", "model", metadata={"global_step": state.global_step})
            artifact.add_dir(folder)
            run.log_artifact(artifact, aliases=[f"step-{state.global_step}"])

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self._run(args)
        run.summary["global_step"] = state.global_step
        if state.best_metric is not None:
            run.summary["best_metric"] = state.best_metric
            run.summary["best_model_checkpoint"] = state.best_model_checkpoint
        self._owned.end()


# report_to="runstack": the Trainer instantiates the class registered under that name.
_integrations.INTEGRATION_TO_CALLBACK.setdefault("runstack", RunstackCallback)
