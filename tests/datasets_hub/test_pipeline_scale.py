"""The build as a pipeline users compose, on the executor they choose, recorded as a run."""

from __future__ import annotations

import json
import os
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


def _table(folder: Path, columns: list[str]) -> list[tuple]:
    import pyarrow.parquet as pq

    rows = [r for p in folder.rglob("*.parquet") for r in pq.read_table(p, columns=columns).to_pylist()]
    return sorted(tuple(str(r[c]) for c in columns) for r in rows)


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
    build([str(r) for r in repos], tmp_path / "p", "v1", progress=lambda s, d, t: seen.append((s, d, t)))
    assert {"read, detect, filter", "exact dedup", "near dedup", "publish"} <= {s for s, _, _ in seen}
    assert "start workers" not in {s for s, _, _ in seen}  # one worker: the tasks run in this process
    # source by source, as each is done
    assert list(dict.fromkeys(d for s, d, _ in seen if s == "read, detect, filter")) == list(range(len(repos) + 1))
    seen.clear()
    build([str(r) for r in repos], tmp_path / "p2", "v1", workers=2, progress=lambda s, d, t: seen.append((s, d, t)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages[:3] == ["start workers", "list sources", "read, detect, filter"] and ("start workers", 2, 2) in seen
    done = [d for s, d, _ in seen if s == "read, detect, filter"]
    assert done == sorted(done) and done[0] == 0 and done[-1] == len(repos) and len(done) > 2


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


@pytest.mark.slow
def test_the_driver_opens_no_spill_of_its_own(repos, tmp_path, monkeypatch):
    """On a cluster the spills are on shared storage: the driver leaves every per-source read (is a
    spill whole, its size, its counts, its records) to the workers, in a new build and a resumed one."""
    pytest.importorskip("distributed")
    import builtins
    import io

    cache, touched = tmp_path / "cache", []
    real_open, real_stat = builtins.open, os.stat

    def spy(path: object) -> None:
        name = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
        if name.startswith(str(cache)) and name.endswith(".pkl"):
            touched.append(name)

    def opened(file, *args, **kwargs):
        spy(file)
        return real_open(file, *args, **kwargs)

    def stat(path, *args, **kwargs):
        spy(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", opened)
    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr(os, "stat", stat)
    first = build([str(r) for r in repos], tmp_path / "one", "v1", executor="dask", cache=cache)
    again = build([str(r) for r in repos], tmp_path / "two", "v1", executor="dask", cache=cache)
    monkeypatch.undo()
    assert first.sources_reused == 0 and again.sources_reused == len(repos)
    assert len(list(cache.glob("*/*.pkl"))) == len(repos) and touched == []  # the workers made and read them
    assert files_of(tmp_path / "two") == files_of(tmp_path / "one")


def test_rows_and_shards_made_by_workers_are_the_same_bytes(repos, tmp_path):
    # Many small shards, so several shard tasks and spool files per language: the same release as one process makes.
    config = BuildConfig(shard_rows=2)
    build([str(r) for r in repos], tmp_path / "one", "v1", config)
    build([str(r) for r in repos], tmp_path / "two", "v1", config, workers=2)
    one = files_of(tmp_path / "one")
    assert one == files_of(tmp_path / "two")
    manifest = json.loads(one["manifest.json"])
    assert len(manifest["shards"]) > 3 and sum(s["rows"] for s in manifest["shards"]) == manifest["stats"]["files"]
    import pyarrow.parquet as pq

    for shard in manifest["shards"]:
        keys = [(r["repo_name"], r["path"]) for r in pq.read_table(tmp_path / "one" / shard["path"]).to_pylist()]
        assert keys == sorted(keys) and len(keys) == shard["rows"] <= 2
    assert not list((tmp_path / "two").rglob("*.pkl"))  # the spool is gone


def test_the_workers_apply_the_opt_outs_as_one_process_does(repos, tmp_path):
    from runstack.datasets_hub import OptOutRegistry

    registry = OptOutRegistry(tmp_path / "optout.jsonl")
    registry.add("carol")
    one = build([str(r) for r in repos], tmp_path / "one", "v1", optout=registry)
    two = build([str(r) for r in repos], tmp_path / "two", "v1", optout=registry, workers=2)
    counted = [{s.name: (s.seen, s.kept, dict(s.dropped)) for s in r.steps}["opt-out"] for r in (one, two)]
    assert counted[0] == counted[1] and counted[1][2] == {"opted out": counted[1][0] - counted[1][1]} != {}
    assert not {p for p in published(tmp_path / "two") if p.startswith("carol/")}
    assert files_of(tmp_path / "two") == files_of(tmp_path / "one")


def test_rows_sorted_out_of_core_give_the_same_release(repos, tmp_path, monkeypatch):
    from runstack.datasets_hub import publish

    config = BuildConfig(shard_rows=2)  # shards that span the sorted runs
    build([str(r) for r in repos], tmp_path / "memory", "v1", config)
    runs: list[int] = []
    spill = publish.ReleaseWriter._spill

    def counted(self, work):
        runs.append(len(self.rows))
        spill(self, work)

    monkeypatch.setattr(publish, "SORT_ROWS", 3)
    monkeypatch.setattr(publish.ReleaseWriter, "_spill", counted)
    build([str(r) for r in repos], tmp_path / "disk", "v1", config, workers=2)
    assert len(runs) >= 2 and max(runs) == 3  # really sorted in runs of at most three, then merged
    assert files_of(tmp_path / "disk") == files_of(tmp_path / "memory")


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


def test_existing_datasets_releases_and_lists_are_sources(repos, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = build([str(r) for r in repos], tmp_path / "v1", "v1")
    rebuilt = build([str(tmp_path / "v1")], tmp_path / "from-release", "v2")  # a release is a source
    assert published(tmp_path / "from-release") == published(tmp_path / "v1")
    assert rebuilt.files_in == first.files_out
    licences = ["repo_name", "path", "detected_licenses", "license_type"]
    assert _table(tmp_path / "from-release", licences) == _table(tmp_path / "v1", licences)  # carried over
    code = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
    rows = [{"repo_name": "zed/geo", "path": "geo/shapes.py", "content": code},
            {"repo_name": "amy/calc", "path": "calc.py", "content": code.replace("area", "surface")},
            {"repo_name": "zed/geo", "path": "geo/more.py", "content": code.replace("w * h", "h * w")}]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join([json.dumps({**rows[1], "repo_name": "kim/calc2"}), "not json", '{"path": "x"}', ""]))
    listing = tmp_path / "sources.txt"
    listing.write_text(f"# my sources\nrows.parquet\n\n{jsonl}\n{repos[2]}\n")
    report = build([str(listing)], tmp_path / "mixed", "v1")
    names = published(tmp_path / "mixed")
    assert {"zed/geo/geo/shapes.py", "amy/calc/calc.py", "zed/geo/geo/more.py"} <= names
    assert report.steps[0].dropped["dataset row without repo_name/path/content"] == 2
    assert not any(n.startswith("kim/calc2") for n in names)  # an exact copy of amy/calc's file
    assert any(n.startswith("carol/gamma/") for n in names)
    pq.write_table(pa.Table.from_pylist([{"text": "x"}]), tmp_path / "wrong.parquet")
    with pytest.raises(InvalidArgumentError, match="columns"):
        build([str(tmp_path / "wrong.parquet")], tmp_path / "w", "v1")


@pytest.mark.slow
def test_a_killed_build_resumes_to_the_same_bytes(repos, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(
        "steps:\n  - default\n  - step: tests.datasets_hub.custom_steps:Slow\n    args: {seconds: 0.15}\n"
    )
    args = [sys.executable, "-m", "runstack.cli.main", "data", "build", *map(str, repos), "--out",
            str(tmp_path / "ds"), "--version", "v1", "--pipeline", str(pipeline), "--no-track"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / ".ds.cache"
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("*/*.pkl")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(cache.glob("*/*.pkl"))
    assert 1 <= len(done) < len(repos) and not (tmp_path / "ds").exists()  # killed part-way, nothing published
    resumed = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} sources from the cache" in resumed.stdout
    assert not cache.exists()  # a completed build cleans up after itself
    whole_args = [str(tmp_path / "whole") if a == str(tmp_path / "ds") else a for a in args]
    whole = subprocess.run(whole_args, env=env, capture_output=True, timeout=300)
    assert whole.returncode == 0
    assert files_of(tmp_path / "ds") == files_of(tmp_path / "whole")


def test_ctrl_c_stops_a_parallel_build_cleanly_and_it_resumes(repos, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil

    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(
        "steps:\n  - default\n  - step: tests.datasets_hub.custom_steps:Slow\n    args: {seconds: 0.3}\n"
    )
    args = [sys.executable, "-m", "runstack.cli.main", "data", "build", *map(str, repos), "--out",
            str(tmp_path / "ds"), "--version", "v1", "--pipeline", str(pipeline), "--no-track", "--workers", "2"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    # Its own process group, as a terminal's Ctrl-C reaches the build and its workers together.
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cache = tmp_path / ".ds.cache"
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("*/*.pkl")):
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = list(cache.glob("*/*.pkl"))
    assert proc.returncode != 0 and "Traceback" not in err.decode()  # stopped, without a stack dump
    assert 1 <= len(done) < len(repos) and not (tmp_path / "ds").exists()  # stopped part-way, nothing published
    assert not list(tmp_path.glob(".runstack-build-*"))  # its working folder removed
    assert not list(cache.glob("*/.*.tmp"))  # and no spill left half-written in the cache
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert workers and not alive  # the spawned worker is gone too
    resumed = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} sources from the cache" in resumed.stdout


def test_a_damaged_spill_in_the_cache_is_made_again(repos, tmp_path):
    cache = tmp_path / "cache"
    build([str(r) for r in repos], tmp_path / "v1", "v1", cache=cache)
    spills = sorted(cache.glob("*/*.pkl"))
    spills[0].write_bytes(spills[0].read_bytes()[:-5])  # cut short
    spills[1].write_bytes(b"")
    again = build([str(r) for r in repos], tmp_path / "v1b", "v1", cache=cache)
    assert again.sources_reused == len(repos) - 2
    assert files_of(tmp_path / "v1b") == files_of(tmp_path / "v1")


def test_a_source_listed_twice_is_read_once(repos, tmp_path):
    twice = build([str(repos[0]), *map(str, repos)], tmp_path / "twice", "v1")
    build([str(r) for r in repos], tmp_path / "once", "v1")
    assert twice.sources_reused == 1  # the second listing is the first one's results
    shards = {k: v for k, v in files_of(tmp_path / "once").items() if k.endswith(".parquet")}
    assert {k: v for k, v in files_of(tmp_path / "twice").items() if k.endswith(".parquet")} == shards


def test_a_new_version_rereads_only_changed_sources_and_reapplies_opt_outs(repos, tmp_path):
    import subprocess

    from runstack.datasets_hub import OptOutRegistry

    cache = tmp_path / "cache"
    first = build([str(r) for r in repos], tmp_path / "v1", "v1", cache=cache)
    assert first.sources_reused == 0
    (repos[2] / "extra.py").write_text("def extra(a, b):\n    return a ** b + b ** a\n")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.x", "-C", str(repos[2]), "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.x", "-C", str(repos[2]), "commit", "-qm", "more"],
                   check=True)  # fmt: skip
    second = build([str(r) for r in repos], tmp_path / "v2", "v2", cache=cache)
    assert second.sources_reused == 2  # only carol/gamma was read again
    scratch = build([str(r) for r in repos], tmp_path / "v2-scratch", "v2")
    assert files_of(tmp_path / "v2") == files_of(tmp_path / "v2-scratch")
    assert "carol/gamma/extra.py" in published(tmp_path / "v2")
    registry = OptOutRegistry(tmp_path / "optout.jsonl")
    registry.add("alice")
    third = build([str(r) for r in repos], tmp_path / "v3", "v3", optout=registry, cache=cache)
    assert third.sources_reused == 3  # nothing re-read, yet alice's files are gone
    assert not any(name.startswith("alice/") for name in published(tmp_path / "v3"))
    assert dict(next(s for s in third.steps if s.name == "opt-out").dropped)["opted out"] > 0
    assert scratch.files_out > third.files_out


def test_shards_are_kept_in_the_cache_by_their_rows_and_reused(repos, tmp_path):
    config, cache = BuildConfig(shard_rows=2), tmp_path / "cache"
    build([str(r) for r in repos], tmp_path / "v1", "v1", config, cache=cache)
    kept = {p: p.stat().st_mtime_ns for p in (cache / "shards").glob("*.parquet")}
    shards = sorted((tmp_path / "v1" / "data").rglob("*.parquet"))
    assert len(kept) == len(shards) > 3
    # Built again (a resumed or a next build): every shard comes from the cache, none is written again.
    build([str(r) for r in repos], tmp_path / "v1b", "v1", config, cache=cache, workers=2)
    assert {p: p.stat().st_mtime_ns for p in (cache / "shards").glob("*.parquet")} == kept
    assert files_of(tmp_path / "v1b") == files_of(tmp_path / "v1")
    assert all(any(os.path.samefile(s, c) for c in kept) for s in (tmp_path / "v1b" / "data").rglob("*.parquet"))
    # A shard damaged in the cache is made again, not published.
    damaged = next(iter(kept))
    damaged.unlink()  # (the releases' hard links keep their bytes)
    damaged.write_bytes(b"PAR1 not a shard")
    build([str(r) for r in repos], tmp_path / "v1c", "v1", config, cache=cache)
    assert files_of(tmp_path / "v1c") == files_of(tmp_path / "v1")
    assert damaged.read_bytes() != b"PAR1 not a shard"
    for recorded in (cache / "shards").glob("*.sha256"):  # digests lost: every shard is made again, the same
        recorded.unlink()
    build([str(r) for r in repos], tmp_path / "v1d", "v1", config, cache=cache)
    assert files_of(tmp_path / "v1d") == files_of(tmp_path / "v1")
    assert len(list((cache / "shards").glob("*.sha256"))) == len(kept)


def test_a_language_of_many_sorted_runs_is_merged_in_rounds_to_the_same_shards(tmp_path, monkeypatch):
    import pickle
    import random

    from runstack.datasets_hub import publish, runs

    rng = random.Random(4)
    monkeypatch.setattr(publish, "SORT_ROWS", 7)  # many sorted runs, each with a Python and a C section
    writer = publish.ReleaseWriter(tmp_path / "out", 5, None, tmp_path / "runs")
    added = rng.sample(range(1000), 200)
    for i in added:
        writer.add("Python" if i % 3 else "C", (f"r{i % 17}", f"p{i}"), (f"s{i}", i, (None, None)), i, "permissive")
    made, languages, *_ = writer.sorted_runs()
    sections = [(str(path), found["Python"]) for path, found in made if "Python" in found]
    assert len(sections) > 10 and languages["Python"] == sum(1 for i in added if i % 3)

    def plan(folder):
        made = publish.plan_language(0, "Python", sections, 5, str(tmp_path / "out"), None, None, str(folder))
        return [(entry, size, pickle.loads(Path(share[1]).read_bytes())) for entry, share, size in made]

    at_once = plan(tmp_path / "once")
    monkeypatch.setattr(runs, "FAN_IN", 3)  # at most three files open: merged in rounds
    in_rounds = plan(tmp_path / "rounds")
    assert list((tmp_path / "rounds").glob("merge-*")) and not list((tmp_path / "once").glob("merge-*"))
    assert in_rounds == at_once
    expected = [
        (f"s{i}", i, (None, None)) for i in sorted((i for i in added if i % 3), key=lambda i: (f"r{i % 17}", f"p{i}"))
    ]
    assert [origin for _, _, rows in in_rounds for origin in rows] == expected  # in key order, shards of five
    assert [len(rows) for _, _, rows in in_rounds][:-1] == [5] * (len(in_rounds) - 1)


def test_a_shard_of_many_sources_is_written_within_a_small_open_file_limit(tmp_path):
    """A shard holds files of many sources (small repositories): its writer keeps a few of their
    spills open, not one per source, so a low ``ulimit -n`` is no obstacle."""
    import subprocess
    import sys

    for i in range(150):
        folder = tmp_path / "src" / f"repo{i:03d}"
        folder.mkdir(parents=True)
        (folder / "main.py").write_text(f"def handler_{i}(event):\n    return event.get({i}) or {i * 7}\n")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))\n"
        "from pathlib import Path\n"
        "from runstack.datasets_hub import build\n"
        "report = build(sorted(str(p) for p in Path(sys.argv[1]).iterdir()), sys.argv[2], 'v1')\n"
        "print(report.files_out, len(report.manifest['shards']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "src"), str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["150", "1"]  # one shard of 150 sources' files


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_a_dataset_source_is_sorted_in_runs_on_disk_to_the_same_rows(tmp_path, monkeypatch, suffix):
    """An existing dataset larger than memory: its rows are sorted by repository and path in runs
    kept on disk and merged, giving the rows a sort in memory gives."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from runstack.datasets_hub import runs, tables
    from runstack.datasets_hub.ingest import Ingest

    rng = random.Random(2)
    rows = [{"repo_name": f"owner{rng.randint(0, 9)}/repo{rng.randint(0, 5)}", "path": f"pkg/m{i % 37}.py",
             "content": f"def f_{i}(x):\n    return x * {i} + {rng.randint(0, 99)}\n"} for i in range(400)]  # fmt: skip
    path = tmp_path / f"rows.{suffix}"
    if suffix == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=50)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "not json\n")
    in_memory = [(r.repo_name, r.path, r.content) for r in Ingest().read(path)]
    spilled: list[int] = []
    spill = tables._spill
    monkeypatch.setattr(tables, "_spill", lambda held, to: spilled.append(len(held)) or spill(held, to))
    monkeypatch.setattr(tables, "RUN_BYTES", 2000)  # a run per ~40 rows
    monkeypatch.setattr(runs, "FAN_IN", 3)  # and merged three at a time, in rounds
    ingest = Ingest()
    in_runs = [(r.repo_name, r.path, r.content) for r in ingest.read(path)]
    assert len(spilled) > 5 and in_runs == in_memory and len(in_runs) > 300
    assert in_runs == sorted(in_runs, key=lambda r: (r[0], r[1]))  # a repository's files together, in path order
    assert ingest.stats.dropped.get("dataset row without repo_name/path/content", 0) == (suffix == "jsonl")
