"""The per-file steps of a build, as a list users change: ``default_steps(config)`` gives the
standard pipeline; a filter is one ``Filter`` subclass or a plain function.

    steps = [*default_steps(config), FunctionFilter(no_generated_code), MaxLineLength(200)]
    build(sources, out, "v1", steps=steps)

Each step is described in the manifest (name, class, parameters, version) and the list's
fingerprint is recorded, so a release says exactly how it was made. Steps run in worker
processes (or on Dask/Spark workers): they must be importable (defined in a module, not in
``__main__`` or a lambda).

``pipeline.yaml`` says the same from the command line (``runstack data build --pipeline``)::

    steps:
      - default                                   # the standard steps, from the build config
      - filter: mypackage.filters:no_generated    # a function record -> bool | str
      - step: mypackage.filters:MaxLineLength     # a PipelineStep subclass
        args: {limit: 200}
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.language import LanguageStep
from runstack.datasets_hub.licenses import LicenseStep
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pii import PiiStep
from runstack.datasets_hub.pipeline import Filter, PipelineStep
from runstack.datasets_hub.quality import QualityFilter
from runstack.datasets_hub.record import SourceFile
from runstack.errors import InvalidArgumentError


class OptOutFilter(Filter):
    name = "opt-out"

    def __init__(self, registry: OptOutRegistry | None) -> None:
        super().__init__()
        self.registry = registry
        self.match = registry.matcher() if registry is not None else (set(), set())

    def keep(self, record: SourceFile) -> bool | str:
        return self.registry is None or not self.registry.excludes(record.repo_name, self.match) or "opted out"

    def params(self) -> dict[str, Any]:
        """The registry's contents by digest (not its path: the same entries give the same manifest)."""
        repos, owners = self.match
        names = json.dumps([sorted(repos), sorted(owners)]).encode()
        return {"entries": len(repos) + len(owners), "sha256": hashlib.sha256(names).hexdigest()}


class FunctionFilter(Filter):
    """A filter from a function ``record -> bool | str`` (a string is the drop reason)."""

    def __init__(self, function: Callable[[SourceFile], bool | str], name: str | None = None) -> None:
        if getattr(function, "__name__", "<lambda>") == "<lambda>" or "<locals>" in getattr(
            function, "__qualname__", ""
        ):
            raise InvalidArgumentError("filter", function, "a function defined at the top of a module (steps run in "
                                       "worker processes, which import it by name)")  # fmt: skip
        self.name = name or function.__name__
        super().__init__()
        self.function = function

    def keep(self, record: SourceFile) -> bool | str:
        return self.function(record)

    def params(self) -> dict[str, Any]:
        return {"function": f"{self.function.__module__}:{self.function.__qualname__}"}


def default_steps(config: BuildConfig, registry: OptOutRegistry | None = None) -> list[PipelineStep]:
    """Today's pipeline: licence -> language -> quality -> opt-out -> PII redaction."""
    # Licences first: the language step drops files it cannot name, licence files among them.
    steps: list[PipelineStep] = [LicenseStep(config.permissive_licenses, config.keep_license_types, config.license_backend),
                                 LanguageStep(),
                                 QualityFilter(config.quality), OptOutFilter(registry)]  # fmt: skip
    if config.redact_pii and config.pii != "off":
        steps.append(PiiStep(config.pii, config.pii_disabled_kinds))
    return steps


def as_step(item: PipelineStep | Callable[[SourceFile], bool | str]) -> PipelineStep:
    if isinstance(item, PipelineStep):
        return item
    if callable(item):
        return FunctionFilter(item)
    raise InvalidArgumentError("steps", item, "PipelineStep instances or filter functions")


def describe(step: PipelineStep) -> dict[str, Any]:
    """What the manifest records of a step."""
    kind = type(step)
    return {"name": step.name, "class": f"{kind.__module__}:{kind.__qualname__}",
            "version": str(getattr(step, "version", "1")), "params": _jsonable(step.params())}  # fmt: skip


def fingerprint(described: list[dict[str, Any]]) -> str:
    """SHA-256 of the steps' descriptions: equal fingerprints, equal per-file processing."""
    return hashlib.sha256(json.dumps(described, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return _jsonable(dataclasses.asdict(value))
    return repr(value)


def _import(spec: str, what: str) -> Any:
    module, _, attribute = spec.partition(":")
    try:
        found = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidArgumentError(what, spec, f"module:name of an importable {what} ({exc})") from None
    return found


def load_pipeline(path: str | Path, config: BuildConfig, registry: OptOutRegistry | None = None) -> list[PipelineStep]:
    """The steps a ``pipeline.yaml`` names (see the module's doc)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise InvalidArgumentError("pipeline", str(path), "a YAML file with a list under 'steps:'")
    steps: list[PipelineStep] = []
    for entry in data["steps"]:
        if entry == "default":
            steps += default_steps(config, registry)
        elif isinstance(entry, dict) and "filter" in entry:
            steps.append(FunctionFilter(_import(entry["filter"], "filter function")))
        elif isinstance(entry, dict) and "step" in entry:
            cls = _import(entry["step"], "step class")
            if not (isinstance(cls, type) and issubclass(cls, PipelineStep)):
                raise InvalidArgumentError("step", entry["step"], "a PipelineStep subclass")
            try:
                steps.append(cls(**(entry.get("args") or {})))
            except TypeError as exc:
                raise InvalidArgumentError(
                    "args", entry.get("args"), f"the arguments of {entry['step']} ({exc})"
                ) from None
        else:
            raise InvalidArgumentError("pipeline step", entry, "default, {filter: module:function} or "
                                       "{step: module:Class, args: {...}}")  # fmt: skip
    return steps
