"""The build as a pipeline users compose, on the executor they choose, recorded as a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import runstack
from runstack.cli.main import main
from runstack.datasets_hub import BuildConfig, FunctionFilter, build, default_steps, use_dataset
from runstack.errors import ArtifactCorruptError, InvalidArgumentError
from tests.datasets_hub.custom_steps import Explode, MaxLines, no_settings


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def published(folder: Path) -> set[str]:
    import pyarrow.parquet as pq

    return {f"{r['repo_name']}/{r['path']}" for p in folder.rglob("*.parquet") for r in pq.read_table(p).to_pylist()}


def test_user_steps_run_are_counted_and_recorded(repos, tmp_path):
    config = BuildConfig()
    steps = [*default_steps(config), FunctionFilter(no_settings), MaxLines(limit=10)]
    report = build([str(r) for r in repos], tmp_path / "custom", "v1", config, steps=steps)
    by_name = {s.name: s for s in report.steps}
    assert dict(by_name["no_settings"].dropped) == {"settings file": 1}
    assert by_name["max-lines"].dropped["more than 10 lines"] > 0
    assert "alice/alpha/pkg/settings.py" not in published(tmp_path / "custom")
    assert all(
        row.count("\n") <= 10 for row in [_content(tmp_path / "custom", p) for p in published(tmp_path / "custom")]
    )
    manifest = json.loads((tmp_path / "custom" / "manifest.json").read_text())
    recorded = manifest["pipeline"]["steps"]
    assert [s["name"] for s in recorded] == [
        "license",
        "language",
        "quality",
        "opt-out",
        "pii",
        "no_settings",
        "max-lines",
    ]
    assert recorded[-1] == {"name": "max-lines", "class": "tests.datasets_hub.custom_steps:MaxLines", "version": "2",
                            "params": {"limit": 10}}  # fmt: skip
    assert recorded[-2]["params"] == {"function": "tests.datasets_hub.custom_steps:no_settings"}
    default = build([str(r) for r in repos], tmp_path / "default", "v1")
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["pipeline"]["fingerprint"] != \
        manifest["pipeline"]["fingerprint"]  # fmt: skip
    # The same step objects again (a second build in the same process): the same counts, the same bytes.
    again = build([str(r) for r in repos], tmp_path / "again", "v1", config, steps=steps)
    assert [(s.name, s.seen, s.kept) for s in again.steps] == [(s.name, s.seen, s.kept) for s in report.steps]
    assert files_of(tmp_path / "again") == files_of(tmp_path / "custom")
    assert default.files_out > report.files_out


def _content(folder: Path, key: str) -> str:
    import pyarrow.parquet as pq

    for path in folder.rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            if f"{row['repo_name']}/{row['path']}" == key:
                return row["content"]
    raise KeyError(key)


def test_a_lambda_step_is_refused_by_name(repos, tmp_path):
    with pytest.raises(InvalidArgumentError, match="defined at the top of a module"):
        build([str(repos[0])], tmp_path / "x", "v1", steps=[lambda record: True])
    assert not (tmp_path / "x").exists()


def test_pipeline_yaml_from_the_cli(repos, tmp_path, monkeypatch):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("steps:\n  - default\n  - filter: tests.datasets_hub.custom_steps:no_settings\n"
                        "  - step: tests.datasets_hub.custom_steps:MaxLines\n    args: {limit: 10}\n")  # fmt: skip
    result = CliRunner().invoke(main, ["data", "build", *map(str, repos), "--out", str(tmp_path / "ds"), "--version",
                                       "v1", "--pipeline", str(pipeline), "--no-track"])  # fmt: skip
    assert result.exit_code == 0, result.output
    steps = json.loads((tmp_path / "ds" / "manifest.json").read_text())["pipeline"]["steps"]
    assert [s["name"] for s in steps][-2:] == ["no_settings", "max-lines"] and steps[-1]["params"] == {"limit": 10}
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - step: tests.datasets_hub.custom_steps:Nope\n")
    result = CliRunner().invoke(main, ["data", "build", str(repos[0]), "--out", str(tmp_path / "b"), "--version", "v1",
                                       "--pipeline", str(bad), "--no-track"])  # fmt: skip
    assert result.exit_code == 1 and "tests.datasets_hub.custom_steps:Nope" in result.output


def test_progress_is_a_callback(repos, tmp_path):
    seen = []
    build([str(r) for r in repos], tmp_path / "p", "v1", progress=lambda stage, done, total: seen.append(stage))
    assert {"read, detect, filter", "exact dedup", "near dedup signatures", "publish"} <= set(seen)


def test_a_failed_rebuild_leaves_the_previous_release_whole(repos, tmp_path):
    build([str(r) for r in repos], tmp_path / "ds", "v1")
    before = files_of(tmp_path / "ds")
    with pytest.raises(RuntimeError, match="this step broke"):
        build([str(r) for r in repos], tmp_path / "ds", "v2", steps=[*default_steps(BuildConfig()), Explode()],
              overwrite=True)  # fmt: skip
    assert files_of(tmp_path / "ds") == before
    build([str(r) for r in repos[:1]], tmp_path / "ds", "v2", overwrite=True)
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["version"] == "v2"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no leftovers


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["dask", "spark"])
def test_every_executor_gives_byte_identical_releases(repos, tmp_path, executor):
    pytest.importorskip("distributed" if executor == "dask" else "pyspark")
    build([str(r) for r in repos], tmp_path / "local", "v1", workers=2)
    build([str(r) for r in repos], tmp_path / executor, "v1", workers=2, executor=executor)
    assert files_of(tmp_path / executor) == files_of(tmp_path / "local")


def test_a_tracked_build_is_a_run_and_a_training_run_traces_back_to_it(repos, tmp_path):
    report = build([str(r) for r in repos], tmp_path / "code", "v1", track="datasets")
    api = runstack.Api()
    view = api.run(report.run_id)
    assert view.status == "finished" and view.job_type == "dataset-build"
    assert [s["name"] for s in view.config["pipeline"]] == ["license", "language", "quality", "opt-out", "pii"]
    assert view.summary["files_out"] == report.files_out and view.summary["shards"] == len(report.manifest["shards"])
    history = view.history()
    assert history["ingest/seen"].dropna().iloc[0] == report.files_in
    assert history["license/seen"].dropna().iloc[0] == report.steps[0].kept
    assert history["dedup/files_out"].dropna().iloc[0] == report.files_out
    assert report.artifact == "dataset-code:v0"

    trainer = runstack.init(project="models", name="trainer")
    ds = use_dataset("dataset-code:latest", "python", split="train")
    assert len(ds) == report.manifest["stats"]["languages"]["Python"]
    trainer.finish()
    from runstack.core.artifacts import ArtifactRegistry
    from runstack.core.store import Store

    (version,) = ArtifactRegistry(Store()).versions("dataset-code")
    assert version["produced_by"] == report.run_id and version["used_by"] == [trainer.id]
    assert version["type"] == "dataset"
    # The folder rebuilt in place: the logged version no longer describes it, and says so.
    build([str(repos[0])], tmp_path / "code", "v2", overwrite=True)
    other = runstack.init(project="models", name="later")
    with pytest.raises(ArtifactCorruptError, match="manifest.json"):
        use_dataset("dataset-code:v0", "python", split="train")
    other.finish()


def test_a_failed_tracked_build_is_a_failed_run(repos, tmp_path):
    with pytest.raises(RuntimeError):
        build([str(r) for r in repos], tmp_path / "x", "v1", steps=[*default_steps(BuildConfig()), Explode()],
              track="datasets")  # fmt: skip
    (view,) = runstack.Api().runs(project="datasets")
    assert view.status == "failed" and "this step broke" in view.error
