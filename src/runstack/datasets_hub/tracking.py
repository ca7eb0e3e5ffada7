"""A build is a run: its pipeline as config, per-stage counters as history, the report as
summary, system metrics, and the release logged as a ``dataset`` artifact (the release's
files by reference, its manifest in the artifact's metadata). A training run that reads the
release with ``use_dataset`` (or ``run.use_artifact``) shows it in its lineage, so a model can
be traced to the exact files, licences and opt-outs it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runstack.datasets_hub.config import BuildConfig
from runstack.errors import InvalidArgumentError


def artifact_name(out: Path) -> str:
    return "dataset-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", out.name).strip("-") or "release")


class BuildTracker:
    def __init__(self, project: str, out: Path, version: str, config: BuildConfig, described: list[dict[str, Any]],
                 sources: Sequence[Any]) -> None:  # fmt: skip
        import runstack
        from runstack.datasets_hub.steps import fingerprint

        self.version = version
        self.run = runstack.init(project=project, name=f"build {out.name} {version}", job_type="dataset-build",
                                 config={"version": version, "out": str(out.absolute()),
                                         "sources": [str(getattr(s, "path", s)) for s in sources],
                                         "pipeline": described, "fingerprint": fingerprint(described),
                                         "build": config.to_dict()})  # fmt: skip
        self.step = 0

    def stage(self, counters: dict[str, float]) -> None:
        self.run.log(counters, step=self.step)
        self.step += 1

    def fail(self, exc: BaseException) -> None:
        self.run.finish(exit_code=1, error=f"{type(exc).__name__}: {exc}")

    def finish(self, report: Any, out: Path) -> tuple[str, str]:
        import runstack

        self.run.summary.update({"files_in": report.files_in, "files_out": report.files_out,
                                 "exact_duplicates": report.exact_duplicates,
                                 "near_duplicates": report.near_duplicates,
                                 "bytes": report.manifest["stats"]["bytes"],
                                 "shards": len(report.manifest["shards"])})  # fmt: skip
        artifact = runstack.Artifact(artifact_name(out), type="dataset", description=f"release {self.version} of {out}",
                                     metadata={"release_version": self.version, "manifest": report.manifest})  # fmt: skip
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            artifact.add_reference(path.absolute().as_uri(), name=path.relative_to(out).as_posix())
        logged = self.run.log_artifact(artifact)
        self.run.finish()
        return self.run.id, f"{logged.name}:v{logged.version}"


def release_folder(artifact: Any) -> Path:
    """The release folder a ``dataset`` artifact refers to."""
    from urllib.parse import unquote, urlparse

    for entry in artifact.manifest()["entries"]:
        if entry["path"] == "manifest.json" and entry.get("ref", "").startswith("file://"):
            return Path(unquote(urlparse(entry["ref"]).path)).parent
    raise InvalidArgumentError("artifact", artifact.name, "a dataset artifact logged by `runstack data build --track`")


def use_dataset(spec: str, name: str | None = None, run: Any = None, **load_kwargs: Any) -> Any:
    """``load_dataset`` over a release logged by a tracked build, recording the use in ``run``'s
    lineage (default: the current run).

        ds = use_dataset("dataset-code:latest", "python", split="train", streaming=True)
    """
    from runstack.core.blobs import sha256_file
    from runstack.core.session import current_or_none
    from runstack.errors import ArtifactCorruptError

    run = run or current_or_none()
    if run is None:
        raise InvalidArgumentError("run", None, "a run: call runstack.init() first, or pass run=")
    artifact = run.use_artifact(spec)
    folder = release_folder(artifact)
    logged = next(e for e in artifact.manifest()["entries"] if e["path"] == "manifest.json")
    found = folder / "manifest.json"
    if not found.is_file() or sha256_file(found)[0] != logged["sha256"]:  # the shards' digests are in it
        raise ArtifactCorruptError(spec, [str(found)])
    from datasets import load_dataset

    return load_dataset(str(folder), name, **load_kwargs)
