"""Hugging Face Transformers: ``Trainer(..., callbacks=[RunstackCallback(project="nlp")])``."""

from __future__ import annotations

from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require, split_numeric

transformers = require("transformers", "transformers")

# Logged once at the end of training: they belong in the summary, not the history.
TRAIN_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


class RunstackCallback(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
    """Training arguments and model config into config, train/eval metrics at ``state.global_step``.

    Args:
        run: an existing run; otherwise one is started with ``init_kwargs`` at train begin
            and finished at train end.
        log_model: log every checkpoint the Trainer saves as a "model" artifact.
    """

    def __init__(self, run: Any = None, log_model: bool = False, **init_kwargs: Any) -> None:
        self._owned = OwnedRun(run, init_kwargs)
        self.log_model = log_model

    def _run(self, args: Any) -> Any:
        return self._owned.get(rank_hint=(args.process_index, args.world_size))

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        run = self._run(args)
        config: dict[str, Any] = {"trainer": plain_config(args.to_dict())}
        if model is not None and getattr(model, "config", None) is not None:
            config["model"] = plain_config(model.config.to_dict())
            config["model_num_parameters"] = sum(p.numel() for p in model.parameters())
        run.config.update(config)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        run = self._run(args)
        numbers, other = split_numeric(logs or {})
        train = {}
        for key, value in numbers.items():
            if (
                key.startswith("eval_")
                or key == "epoch"
                and all(k.startswith("eval_") or k == "epoch" for k in numbers)
            ):
                continue  # evaluation results are logged by on_evaluate
            if key in TRAIN_SUMMARY_KEYS:
                run.summary[key] = value
            else:
                train[f"train/{key}"] = value
        if train:
            run.log(train, step=state.global_step)
        for key, value in other.items():
            run.summary[key] = plain_config(value)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        numbers, _ = split_numeric(metrics or {})
        renamed = {f"eval/{k.removeprefix('eval_')}": v for k, v in numbers.items()}
        if renamed:
            self._run(args).log(renamed, step=state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.log_model or not state.is_world_process_zero:
            return
        import os

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
        self._owned.finish()
