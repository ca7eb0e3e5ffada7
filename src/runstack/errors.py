"""Every error runstack raises, in one small tree.

``RunstackError`` is the root; catch it to handle anything runstack reports.
Each message names the bad value and says what to do about it.

    RunstackError
    ├── InvalidArgumentError      an argument outside its allowed values
    ├── InvalidMetricError        a key or value ``log()`` cannot store
    ├── StepOrderError            a step that goes backwards under ``strict_steps``
    ├── ConfigError               config that is not JSON-serialisable
    ├── RunStateError             an operation the run's state forbids
    ├── RunNotFoundError          no run with that id
    ├── RunExistsError            ``id=`` names a run that exists and ``resume="never"``
    ├── ArtifactError             a bad artifact name, path or operation
    │   └── ArtifactCorruptError  a stored file no longer matches its checksum
    ├── SweepConfigError          a sweep config field that is missing or invalid
    ├── ServerError               the team server refused a request or cannot be reached
    │   └── AuthError             a missing, revoked or too weak API key (401/403)
    ├── StoreError                the store folder cannot be read or written
    │   └── StoreFormatError      the store was written by a newer format
    └── MissingDependencyError    an optional package is not installed
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class RunstackError(Exception):
    """Root of every error runstack raises."""

    def __reduce__(self) -> Any:
        # The subclasses' constructors take the bad value, not the message: rebuild without calling
        # them, so an error raised in a multiprocessing worker reaches the parent intact.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class InvalidArgumentError(RunstackError, ValueError):
    """An argument outside its allowed values."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name, self.value = name, value
        super().__init__(f"{name}={value!r} is not valid: use {allowed}")


class InvalidMetricError(RunstackError, ValueError):
    """A metric key or value that ``log()`` cannot store."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            shown = f"<{type(value).__name__} shape={tuple(value.shape)} dtype={value.dtype}>"
        else:
            shown = " ".join(repr(value).split())
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"cannot log {key!r} = {shown}: {reason}")


class StepOrderError(RunstackError, ValueError):
    """A step smaller than one already logged, with ``strict_steps=True``."""

    def __init__(self, step: int, last_step: int) -> None:
        self.step, self.last_step = step, last_step
        super().__init__(
            f"step {step} is before the last logged step {last_step}: pass a step >= {last_step}, "
            "or init(strict_steps=False) to keep out-of-order steps"
        )


class ConfigError(RunstackError, TypeError):
    """A config value that is not JSON-serialisable."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key, self.value = key, value
        super().__init__(f"config[{key!r}] = {value!r:.80}: {reason}")


class RunStateError(RunstackError, RuntimeError):
    """An operation the run's current state does not allow (e.g. log after finish)."""


class RunNotFoundError(RunstackError, LookupError):
    """No run with the given id in the store."""

    def __init__(self, run_id: str, where: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in {where}: check the id with `runstack ls`")


class RunExistsError(RunstackError):
    """``init(id=...)`` names an existing run while ``resume="never"``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} already exists: pass resume='allow' or resume='must' to continue it, or choose another id"
        )


class ArtifactError(RunstackError, ValueError):
    """An artifact name, file path or operation that cannot be allowed."""


class ArtifactCorruptError(ArtifactError):
    """Stored artifact files whose content no longer matches the manifest's SHA-256."""

    def __init__(self, spec: str, paths: list[str]) -> None:
        self.spec, self.paths = spec, paths
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        super().__init__(f"{spec}: {shown} changed on disk since logging (checksum mismatch): log the artifact again")


class StoreError(RunstackError, OSError):
    """The store folder cannot be created, read or written."""

    def __init__(self, path: Any, reason: str) -> None:
        self.path = path
        super().__init__(f"store at {str(path)!r}: {reason}")


class StoreFormatError(StoreError):
    """The store or a history file was written by an unknown format version."""


class SweepConfigError(RunstackError, ValueError):
    """A sweep config field that is missing or invalid."""

    def __init__(self, field: str, value: Any, fix: str) -> None:
        self.field, self.value = field, value
        shown = " ".join(repr(value).split())
        super().__init__(f"sweep config {field} = {shown[:80]} is not valid: {fix}")


class ServerError(RunstackError, ConnectionError):
    """The team server refused a request, or cannot be reached."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url, self.status = url, status
        super().__init__(f"server {url}: {reason}")


class AuthError(ServerError):
    """No API key, a revoked one, or one whose role does not allow the request."""


class MissingDependencyError(RunstackError, ImportError):
    """An optional package needed by this feature is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        self.package, self.extra = package, extra
        super().__init__(f"{package} is not installed: pip install 'runstack[{extra}]'")


__all__ = [
    "ArtifactCorruptError",
    "AuthError",
    "ArtifactError",
    "ConfigError",
    "InvalidArgumentError",
    "InvalidMetricError",
    "MissingDependencyError",
    "RunExistsError",
    "RunNotFoundError",
    "RunStateError",
    "RunstackError",
    "ServerError",
    "StepOrderError",
    "StoreError",
    "StoreFormatError",
    "SweepConfigError",
]
