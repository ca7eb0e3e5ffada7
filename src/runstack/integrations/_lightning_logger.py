"""The body of ``RunstackLogger``, shared by the ``lightning`` and ``pytorch_lightning`` bindings.

It imports neither package: each binding file subclasses it together with its own
namespace's ``Logger`` and names the two helpers it needs from that namespace.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

from runstack.core.store import resolve_root
from runstack.errors import ArtifactError, InvalidArgumentError
from runstack.integrations._common import OwnedRun, plain_config, split_numeric


class LoggerBody:
    """A Lightning ``Logger`` writing to a runstack run (see ``RunstackLogger``)."""

    LOGGER_JOIN_CHAR = "-"
    _rank_zero_only: Any = None  # the namespace's rank_zero_only, set by the binding
    _convert_params: Any = None
    _add_prefix: Any = None

    def __init__(self, project: str | None = None, name: str | None = None, save_dir: str | None = None,
                 version: str | None = None, tags: list[str] | None = None, config: dict[str, Any] | None = None,
                 group: str | None = None, notes: str | None = None, job_type: str | None = None,
                 log_model: bool | Literal["all"] = False, prefix: str = "", checkpoint_name: str | None = None,
                 run: Any = None, **kwargs: Any) -> None:  # fmt: skip
        """
        Args:
            project, name, tags, config, group, notes, job_type: as for ``runstack.init``.
            save_dir: the store folder (``dir=`` of ``runstack.init``; default ``$RUNSTACK_DIR`` or
                ``./runstack``). Lightning writes checkpoints and LightningCLI's ``config.yaml``
                under the run's own folder (``logger.save_dir``).
            version: the run id (``id=``): with ``resume="allow"`` in ``kwargs`` it continues a run.
            log_model: ``True`` logs the best and last checkpoints as a "model" artifact when
                training ends; ``"all"`` logs every checkpoint as it is saved; ``False`` none.
            prefix: put in front of every metric name, joined with "-".
            checkpoint_name: the artifact name (default ``model-<run id>``).
            run: an existing run to log to (left open); otherwise the logger starts one on first
                use, finishes it when fit/validate/test ends, and opens it again if used later.
            **kwargs: more arguments of ``runstack.init`` (resume, mode, log_ranks, ...).
        """
        super().__init__()
        if log_model not in (True, False, "all"):
            raise InvalidArgumentError("log_model", log_model, "True, False or 'all'")
        kwargs.setdefault("dir", save_dir)
        init_kwargs = dict(project=project, name=name, tags=tags, config=config, group=group, notes=notes,
                           job_type=job_type, id=version or kwargs.pop("id", None), **kwargs)  # fmt: skip
        self._owned = OwnedRun(run, init_kwargs, "lightning")
        self._log_model = log_model
        self._prefix = prefix
        self._checkpoint_name = checkpoint_name
        self._checkpoint_callback: Any = None
        self._logged_checkpoints: dict[str, float] = {}

    # -- identity and folders --------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self._owned.init_kwargs.get("project") or getattr(self._owned.run, "project", None) or "default")

    @property
    def version(self) -> str:
        return self._owned.ensure_id()

    @property
    def save_dir(self) -> str:
        """The run's folder in the store: Lightning puts checkpoints and the CLI's config here."""
        root = self._owned.init_kwargs.get("dir")
        run = self._owned.run
        if run is not None and not run.disabled:
            return run.dir
        return str(resolve_root(root).absolute() / "runs" / self.version)

    @property
    def log_dir(self) -> str:
        return self.save_dir

    @property
    def root_dir(self) -> str:
        return self.save_dir

    @property
    def experiment(self) -> Any:
        """The runstack run (started on first use; a NoOpRun on ranks other than 0)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return self._owned.get(rank_hint=(self._rank_zero_only.rank, world))

    # -- what Lightning calls ----------------------------------------------------------------
    def log_hyperparams(self, params: Any, metrics: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        if type(params).__module__.startswith("omegaconf"):
            params = plain_config(params)
        self.experiment.config.update(plain_config(type(self)._convert_params(params)))
        if metrics:
            self.log_metrics(metrics, 0)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = type(self)._add_prefix(dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR)
        numbers, other = split_numeric(metrics)
        run = self.experiment
        if numbers:
            run.log(numbers, step=step)
        for key, value in other.items():
            run.summary[key] = plain_config(value)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the module tree (as text media "graph") and its parameter count."""
        import runstack

        run = self.experiment
        run.log({"graph": runstack.Text(str(model))}, commit=False)
        run.summary["graph/num_parameters"] = sum(p.numel() for p in model.parameters())

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        summary = self.experiment.summary
        for attr in ("best_model_path", "best_model_score", "last_model_path"):
            value = getattr(checkpoint_callback, attr, None)
            if value not in (None, ""):
                summary[f"checkpoint/{attr}"] = plain_config(value)
        if self._log_model == "all":
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model:
            self._checkpoint_callback = checkpoint_callback

    def save(self) -> None:
        """Nothing to do: every logged step is already on disk."""

    def finalize(self, status: str) -> None:
        """fit/validate/test ended: log pending checkpoints and finish the run (opened again if used later)."""
        if status != "failed" and self._checkpoint_callback is not None:
            self._log_checkpoints(self._checkpoint_callback)
            self._checkpoint_callback = None
        if self._owned.run is None:
            return
        if status == "failed":
            exc = sys.exc_info()[1]  # Lightning calls finalize("failed") while handling the exception
            self._owned.end("failed", f"{type(exc).__name__}: {exc}" if exc is not None else None)
        else:
            self._owned.end()

    # -- media, artifacts and watching, as wandb's Lightning logger offers them --------------
    def _log_media(self, key: str, items: list[Any], step: int | None) -> None:
        data = {key: items[0]} if len(items) == 1 else {f"{key}/{i}": item for i, item in enumerate(items)}
        self.experiment.log(data, step=step)

    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: Any) -> None:
        """Images (arrays, tensors, PIL images or paths); ``caption=[...]`` one per image."""
        import runstack

        captions = _per_item("caption", kwargs.get("caption"), len(images))
        self._log_media(key, [runstack.Image(img, caption=c) for img, c in zip(images, captions, strict=True)], step)

    def log_audio(self, key: str, audios: list[Any], step: int | None = None, **kwargs: Any) -> None:
        """Audio clips; ``sample_rate=[...]`` (required) and ``caption=[...]`` one per clip."""
        import runstack

        rates = _per_item("sample_rate", kwargs.get("sample_rate"), len(audios))
        captions = _per_item("caption", kwargs.get("caption"), len(audios))
        clips = [runstack.Audio(a, sample_rate=r, caption=c) for a, r, c in zip(audios, rates, captions, strict=True)]
        self._log_media(key, clips, step)

    def log_table(self, key: str, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                  dataframe: Any = None, step: int | None = None) -> None:  # fmt: skip
        """A table from ``columns`` and ``data`` rows, or from a pandas ``dataframe``."""
        import runstack

        self._log_media(key, [runstack.Table(columns=columns, data=data, dataframe=dataframe)], step)

    def log_text(self, key: str, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                 dataframe: Any = None, step: int | None = None) -> None:  # fmt: skip
        """Text samples as a table, as wandb's logger does."""
        self.log_table(key, columns, data, dataframe, step)

    def watch(self, model: Any, log: str = "gradients", log_freq: int = 100, log_graph: bool = True) -> None:
        """Parameter/gradient norms and histograms every ``log_freq`` steps (``runstack.watch``)."""
        import runstack

        runstack.watch(model, log=log, log_freq=log_freq, run=self.experiment)
        if log_graph:
            self.log_graph(model)

    def use_artifact(self, artifact: str, artifact_type: str | None = None) -> Any:
        """The artifact ``name[:version|:alias]``, recorded as an input of this run."""
        found = self.experiment.use_artifact(artifact)
        _check_type(artifact, found, artifact_type)
        return found

    def download_artifact(self, artifact: str, save_dir: str | None = None, artifact_type: str | None = None,
                          use_artifact: bool = True) -> str:  # fmt: skip
        """Copy an artifact's files into ``save_dir`` (default ``./artifacts/<name>``); returns the folder."""
        if use_artifact:
            found = self.use_artifact(artifact, artifact_type)
        else:
            from runstack.core.artifacts import ArtifactRegistry
            from runstack.core.store import Store

            found = ArtifactRegistry(Store(self._owned.init_kwargs.get("dir"))).get(artifact)
            _check_type(artifact, found, artifact_type)
        target = save_dir or os.path.join("artifacts", artifact.replace(":", "-"))
        found.download(target)
        return str(target)

    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        import runstack

        best = getattr(checkpoint_callback, "best_model_path", "") or ""
        paths = [getattr(checkpoint_callback, "last_model_path", "") or "", best,
                 *(getattr(checkpoint_callback, "best_k_models", None) or {})]  # fmt: skip
        run = self.experiment
        for path in dict.fromkeys(p for p in paths if p and os.path.isfile(p)):
            stamp = os.path.getmtime(path)
            if self._logged_checkpoints.get(path) == stamp:
                continue
            score = plain_config(getattr(checkpoint_callback, "best_k_models", {}).get(path))
            artifact = runstack.Artifact(self._checkpoint_name or f"model-{run.id}", "model",
                                         metadata={"score": score, "path": os.path.basename(path)})  # fmt: skip
            artifact.add_file(path)
            run.log_artifact(artifact, aliases=["best"] if path == best else [])
            self._logged_checkpoints[path] = stamp

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_checkpoint_callback": None}


def _per_item(name: str, values: Any, count: int) -> list[Any]:
    if values is None:
        return [None] * count
    if not isinstance(values, list | tuple) or len(values) != count:
        raise InvalidArgumentError(name, values, f"a list with one value per item ({count})")
    return list(values)


def _check_type(spec: str, artifact: Any, wanted: str | None) -> None:
    if wanted is not None and artifact.type != wanted:
        raise ArtifactError(
            f"{spec} is of type {artifact.type!r}, not {wanted!r}: pass artifact_type={artifact.type!r}"
        )
