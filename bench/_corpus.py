"""Real code nobody here wrote: the Python standard library and installed packages' sources."""

from __future__ import annotations

import sysconfig
from pathlib import Path

PACKAGES = ("transformers", "pandas", "sklearn", "numpy", "keras")


def corpus(
    max_bytes: int = 60 << 20, max_file: int = 200_000, packages: tuple[str, ...] = PACKAGES
) -> list[tuple[str, str]]:
    """(path, text) of .py files, stdlib first, up to ``max_bytes`` in total."""
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    site = Path(sysconfig.get_paths()["purelib"])
    roots += [site / p for p in packages if (site / p).exists()]
    out, total = [], 0
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "site-packages" in path.relative_to(root).parts:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if not data or len(data) > max_file:
                continue
            out.append((str(path), data.decode("utf-8", "replace")))
            total += len(data)
            if total >= max_bytes:
                return out
    return out


def source_roots(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    site = Path(sysconfig.get_paths()["purelib"])
    return [Path(sysconfig.get_paths()["stdlib"]) / "json", *(site / p for p in packages if (site / p).exists())]
