"""``run.config``: nested, JSON-serialisable hyperparameters, saved on every change."""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from runstack.errors import ConfigError


def to_json(key: str, value: Any) -> Any:
    """Convert ``value`` to plain JSON types, or raise ConfigError naming the key.

    Accepted besides JSON types: tuples and sets (as lists), numpy scalars and arrays,
    paths, enums, dataclasses and objects with ``to_dict()`` (argparse Namespace via vars()).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value  # NaN and inf are kept; Python's JSON dialect stores them
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(
                    f"{key}.{k!r}", v, f"config keys must be strings, got {type(k).__name__}: use str(key)"
                )
            out[k] = to_json(f"{key}.{k}", v)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_json(f"{key}[{i}]", v) for i, v in enumerate(items)]
    if isinstance(value, enum.Enum):
        return to_json(key, value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(key, dataclasses.asdict(value))
    if type(value).__module__ == "numpy" or type(value).__module__.startswith("torch"):
        if hasattr(value, "tolist"):
            return to_json(key, value.tolist())
    if callable(getattr(value, "to_dict", None)):
        return to_json(key, value.to_dict())
    if type(value).__name__ == "Namespace":
        return to_json(key, vars(value))
    raise ConfigError(
        key, value, f"{type(value).__name__} is not JSON-serialisable: pass str(value) or a dict of its fields"
    )


def _unflatten_into(target: dict[str, Any], key: str, value: Any) -> None:
    # "optim.lr" style keys update nested dicts, as with argparse-style overrides.
    parts = key.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


class Config(MutableMapping[str, Any]):
    """Hyperparameters of a run: a dict that also allows ``config.lr`` attribute access.

    Values are converted to JSON types when set (``ConfigError`` otherwise) and written
    to the catalogue at once, so config survives a crash.
    """

    def __init__(self, data: dict[str, Any], on_change: Callable[[dict[str, Any]], None] | None) -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_on_change", on_change)
        # Change and save under one lock: threads updating at once never save an older snapshot last.
        object.__setattr__(self, "_lock", threading.RLock())

    def _save(self) -> None:
        if self._on_change is not None:
            self._on_change(self._data)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        """Merge keys into the config in one write; dotted keys update nested dicts."""
        merged = dict(other.items() if hasattr(other, "items") else other, **kwargs)
        for k in merged:
            if not isinstance(k, str):
                raise ConfigError(
                    repr(k), merged[k], f"config keys must be strings, got {type(k).__name__}: use str(key)"
                )
        converted = {k: to_json(k, v) for k, v in merged.items()}  # all checked before any change
        with self._lock:
            for k, v in converted.items():
                _unflatten_into(self._data, k, v) if "." in k else self._data.__setitem__(k, v)
            self._save()

    def __getitem__(self, key: str) -> Any:
        if key in self._data:
            return self._data[key]
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]
            self._save()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}: keys are {sorted(self._data)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def as_dict(self) -> dict[str, Any]:
        """A deep copy as plain dicts."""
        import copy

        with self._lock:
            return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"
