"""Turning what users pass to ``log()`` into typed scalars, with clear errors.

This is the slow path: it runs once per new shape of dict (then the shape is
cached) and on every call whose values need converting (numpy or torch scalars,
nested dicts).
"""

from __future__ import annotations

from typing import Any

from runstack.errors import InvalidMetricError

MAX_KEY_LENGTH = 256


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds lone surrogates (undecodable bytes kept by surrogateescape): UTF-8,
    SQLite and Parquet cannot store it."""
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def shown(text: str) -> str:
    """``text`` printable even when it holds lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode()


RESERVED_KEYS = frozenset({"_step", "_timestamp", "_rank"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_key(key: Any) -> str:
    """Return ``key`` if it can name a metric, else raise InvalidMetricError."""
    if not isinstance(key, str):
        raise InvalidMetricError(repr(key), key, "metric names must be strings: use str(key)")
    if not key or not key.strip():
        raise InvalidMetricError(key, key, "metric names must not be empty: give the metric a name")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidMetricError(
            key[:40] + "...", len(key), f"metric names are at most {MAX_KEY_LENGTH} characters: shorten it"
        )
    if key in RESERVED_KEYS:
        raise InvalidMetricError(key, key, f"{key} is reserved for runstack: use another name, or step= for the step")
    if any(ord(ch) < 32 for ch in key) or has_surrogates(key):
        raise InvalidMetricError(
            shown(key),
            key,
            "metric names must be printable text (no control characters or lone surrogates)",
        )
    return key


MAX_DEPTH = 32


def flatten(data: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """Flatten nested dicts into ``"a/b"`` keys, checking every key."""
    if depth > MAX_DEPTH:
        raise InvalidMetricError(
            prefix.rstrip("/")[:60], "{...}", f"dicts nested deeper than {MAX_DEPTH}: flatten them"
        )
    if out is None:
        if not isinstance(data, dict):
            raise InvalidMetricError("<data>", data, "log() takes a dict of metrics, e.g. run.log({'loss': 0.3})")
        out = {}
    for key, value in data.items():
        name = prefix + check_key(key)
        if isinstance(value, dict):
            if not value:
                raise InvalidMetricError(name, value, "an empty dict has no metrics to log")
            flatten(value, name + "/", out, depth + 1)
        else:
            if name in out:
                raise InvalidMetricError(name, value, "this name appears twice after flattening nested dicts")
            out[name] = value
    return out


def _item(key: str, value: Any) -> Any:
    """Unwrap a one-element numpy array or torch tensor into a Python scalar."""
    size = getattr(value, "size", None)
    if callable(size):  # torch.Tensor.size() is a method; numel() gives the count
        size = value.numel()
    if size != 1:
        shape = tuple(getattr(value, "shape", ()))
        raise InvalidMetricError(
            key,
            value,
            f"a tensor/array of shape {shape} is not a scalar: log value.mean(), value.item() or one key per element",
        )
    return value.item()


def classify(key: str, value: Any) -> tuple[str, int | float | bool]:
    """Return the storage code (``d``, ``q`` or ``?``) and the plain Python value."""
    kind = type(value)
    if kind is bool:
        return "?", value
    if kind is int:
        if INT64_MIN <= value <= INT64_MAX:
            return "q", value
        raise InvalidMetricError(key, value, "integers must fit in 64 bits: log float(value) instead")
    if kind is float:
        return "d", value
    module = kind.__module__
    if module == "numpy" or module.startswith("torch"):
        plain = _item(key, value)
        if type(plain).__module__ == "numpy":  # .item() of a longdouble or complex stays numpy
            if getattr(getattr(plain, "dtype", None), "kind", "") == "f":
                return "d", float(plain)
            raise InvalidMetricError(key, value, f"{type(plain).__name__} is not a real number: log float(value)")
        return classify(key, plain)
    if isinstance(value, bool):
        return "?", bool(value)
    if isinstance(value, int):
        return classify(key, int(value))
    if isinstance(value, float):
        return "d", float(value)
    if isinstance(value, complex):
        raise InvalidMetricError(key, value, "complex numbers are not stored: log value.real and value.imag")
    if isinstance(value, (str, bytes)):
        reason = "log() stores numbers and bools: put text in run.summary or run.config"
    elif value is None:
        reason = "None is not a number: leave the key out of this log() call"
    else:
        reason = f"{kind.__name__} is not a number or bool: convert it, e.g. float(value)"
    raise InvalidMetricError(key, value, reason)


def check_step(step: Any) -> int:
    """``step`` as a Python int, or InvalidArgumentError naming it.

    Integer-like scalars (numpy integers, a 0-d integer tensor) are accepted through
    ``__index__``; bools, floats, strings and out-of-range numbers are not.
    """
    from runstack.errors import InvalidArgumentError

    if isinstance(step, bool) or not hasattr(type(step), "__index__"):
        raise InvalidArgumentError("step", step, "an int (or leave step out to use the run's own step)")
    try:
        value = step.__index__()
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a tensor with several elements
        raise InvalidArgumentError("step", step, "a single int (or leave step out to use the run's own step)") from exc
    if type(value) is not int or isinstance(value, bool) or not INT64_MIN <= value <= INT64_MAX:
        raise InvalidArgumentError("step", step, "an int between -2**63 and 2**63 - 1")
    return value


def check_run_id(run_id: Any) -> str:
    """A run id is a plain name (it becomes a folder): letters, digits, '.', '_', '-'."""
    import re

    from runstack.errors import InvalidArgumentError

    if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id):
        raise InvalidArgumentError(
            "id", run_id, "a plain name of letters, digits, '.', '_' or '-' (at most 128, no '/' or '..')"
        )
    return run_id


def check_project(project: Any) -> str:
    """A project name: printable text without path separators (integrations put it in paths)."""
    from runstack.errors import InvalidArgumentError

    if (
        not isinstance(project, str)
        or not project.strip()
        or len(project) > 128
        or project in (".", "..")
        or any(ch in project for ch in "/\\")
        or any(ord(ch) < 32 for ch in project)
        or has_surrogates(project)
    ):
        raise InvalidArgumentError(
            "project", project, "a name of at most 128 printable characters without '/' or '\\\\', not '.' or '..'"
        )
    return project


def check_text(name: str, value: Any, limit: int = 100_000) -> str | None:
    """Free text stored in the catalogue (a run's name, notes, tags): a str that UTF-8 can hold."""
    from runstack.errors import InvalidArgumentError

    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or has_surrogates(value):
        raise InvalidArgumentError(name, shown(value) if isinstance(value, str) else value,
                                   f"text of at most {limit:,} characters (no lone surrogates)")  # fmt: skip
    return value


def is_blob_name(name: str) -> bool:
    """A SHA-256 content address: 64 lowercase hex digits (never a path)."""
    return isinstance(name, str) and len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def numpy_scalar(value: Any) -> bool:
    """A numpy scalar (not an array): ``struct`` packs it exactly, as it does the Python value."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ != "ndarray"
