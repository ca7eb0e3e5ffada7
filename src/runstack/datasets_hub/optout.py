"""The opt-out registry: owners and owner/repo entries (JSON lines) removed from every build."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from runstack.errors import InvalidArgumentError


def default_path() -> Path:
    return Path(os.environ.get("RUNSTACK_OPTOUT") or "optout.jsonl")


class OptOutRegistry:
    """``{"owner": "alice"}`` or ``{"repo": "alice/tool"}`` per line, with the time it was added."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def entries(self) -> list[dict[str, str | float]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    @staticmethod
    def _entry(name: str) -> dict[str, str]:
        name = name.strip().strip("/")
        parts = name.split("/")
        if not name or len(parts) > 2 or any(not p for p in parts):
            raise InvalidArgumentError("opt-out entry", name, "an owner ('alice') or a repository ('alice/tool')")
        return {"repo": name} if len(parts) == 2 else {"owner": name}

    def add(self, name: str) -> bool:
        """Add an owner or owner/repo; False when it was already there."""
        entry = self._entry(name)
        if any({k: v for k, v in e.items() if k != "added_at"} == entry for e in self.entries()):
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({**entry, "added_at": time.time()}) + "\n")
        return True

    def remove(self, name: str) -> bool:
        entry = self._entry(name)
        kept = [e for e in self.entries() if {k: v for k, v in e.items() if k != "added_at"} != entry]
        removed = len(kept) != len(self.entries())
        self.path.write_text("".join(json.dumps(e) + "\n" for e in kept))
        return removed

    def matcher(self) -> tuple[set[str], set[str]]:
        owners = {str(e["owner"]).lower() for e in self.entries() if "owner" in e}
        repos = {str(e["repo"]).lower() for e in self.entries() if "repo" in e}
        return owners, repos

    def excludes(self, repo_name: str, matcher: tuple[set[str], set[str]] | None = None) -> bool:
        owners, repos = matcher or self.matcher()
        return repo_name.lower() in repos or repo_name.split("/", 1)[0].lower() in owners
