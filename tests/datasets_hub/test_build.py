"""The pipeline end to end on real git repositories made by the test."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from runstack.datasets_hub.build import Source, build
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.publish import diff, lookup, read_column


def _rows(out):
    manifest = json.loads((out / "manifest.json").read_text())
    rows = []
    for shard in manifest["shards"]:
        rows += pq.read_table(out / shard["path"]).to_pylist()
    return {(r["repo_name"], r["path"]): r for r in rows}


def test_build_filters_dedups_redacts_and_publishes(repos, tmp_path):
    out = tmp_path / "ds"
    report = build([str(r) for r in repos], out, "v1", progress=False)
    rows = _rows(out)
    assert ("alice/alpha", "pkg/shared.py") in rows  # permissive copy wins the exact-duplicate group
    assert ("bob/beta", "beta/shared.py") not in rows and ("bob/beta", "beta/main.py") not in rows  # GPL dropped
    assert ("carol/gamma", "near.py") not in rows and report.near_duplicates >= 1
    assert (
        rows[("alice/alpha", "pkg/shared.py")]["near_dup_cluster"] == rows[("alice/alpha", "pkg/shared.py")]["blob_id"]
    )
    settings = rows[("alice/alpha", "pkg/settings.py")]["content"]
    assert "<EMAIL>" in settings and "<IP_ADDRESS>" in settings and "127.0.0.1" in settings
    assert "AKIAIOSFODNN7EXAMPLE" not in settings and "<PASSWORD>" in settings
    spans = rows[("alice/alpha", "pkg/settings.py")]["pii"]
    assert {s["kind"] for s in spans} >= {"email", "ipv4", "aws_access_key_id", "password_assignment"}
    assert all(settings[s["start"] : s["end"]].startswith("<") for s in spans)
    assert rows[("alice/alpha", "pkg/settings.py")]["length_bytes"] == len(settings.encode())
    core = rows[("alice/alpha", "pkg/core.py")]
    assert (
        core["language"] == "Python" and core["license_type"] == "permissive" and core["detected_licenses"] == ["MIT"]
    )
    assert core["commit"] and len(core["blob_id"]) == 40
    assert rows[("alice/alpha", "tool.rs")]["language"] == "Rust"
    assert rows[("alice/alpha", "node_modules/lib/index.js")]["is_vendor"] is True
    assert rows[("carol/gamma", "spdx.py")]["detected_licenses"] == ["Apache-2.0"]  # its header overrides the repo's
    assert rows[("carol/gamma", "web/app.js")]["detected_licenses"] == ["MIT"]  # from package.json
    assert ("alice/alpha", "wide.py") not in rows and ("alice/alpha", "gen/api_pb2.py") not in rows
    dropped = {s.name: dict(s.dropped) for s in report.steps}
    assert dropped["ingest"] == {"binary (NUL bytes)": 1}
    assert dropped["license"] == {"licence non_permissive": 3}
    assert dropped["quality"] == {"line longer than 1000": 1, "auto-generated": 1}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "v1" and manifest["counts"]["pii"]["email"] == 1
    assert {s["config"] for s in manifest["shards"]} >= {"python", "rust", "javascript"}
    card = (out / "README.md").read_text()
    assert "config_name: default" in card and "config_name: python" in card and "path: data/python/*.parquet" in card


def test_same_inputs_give_byte_identical_shards(repos, tmp_path):
    build([str(r) for r in repos], tmp_path / "a", "v1", progress=False)
    build([str(r) for r in repos], tmp_path / "b", "v1", progress=False)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_optout_lookup_and_diff(repos, tmp_path):
    build([str(r) for r in repos], tmp_path / "v1", "v1", progress=False)
    registry = OptOutRegistry(tmp_path / "optout.jsonl")
    assert registry.add("carol") and not registry.add("carol")
    report = build([str(r) for r in repos], tmp_path / "v2", "v2", optout=registry, progress=False)
    assert dict(report.steps[4].dropped) == {"opted out": 4}
    version, files = lookup(tmp_path / "v1", "carol/gamma")
    assert version == "v1" and {f["path"] for f in files} == {"spdx.py", "package.json", "web/app.js"}
    assert lookup(tmp_path / "v2", "carol")[1] == []
    changes = diff(tmp_path / "v1", tmp_path / "v2")
    assert {r["repo_name"] for r in changes["removed"]} == {"carol/gamma"} and changes["added"] == []


def test_parallel_workers_give_the_same_dataset(repos, tmp_path):
    build([str(r) for r in repos], tmp_path / "one", "v1", progress=False)
    build([str(r) for r in repos], tmp_path / "two", "v1", workers=2, progress=False)
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")


def test_output_folder_is_not_overwritten_by_accident(repos, tmp_path):
    from runstack.errors import InvalidArgumentError

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="an empty or new folder"):
        build([str(repos[0])], tmp_path / "ds", "v1", progress=False)
    assert (tmp_path / "ds" / "keep.txt").exists()
    with pytest.raises(InvalidArgumentError, match="source='/nope'"):
        build(["/nope"], tmp_path / "x", "v1", progress=False)


def test_priority_decides_exact_duplicates_among_equals(repos, tmp_path):
    config = BuildConfig(keep_license_types=("permissive", "non_permissive", "no_license"))
    sources = [Source(str(repos[0]), priority=1), Source(str(repos[1]), priority=100), Source(str(repos[2]))]
    rows = _rows(_built := build(sources, tmp_path / "p", "v1", config=config, progress=False) and tmp_path / "p")
    # beta's copy is GPL: permissive alpha still wins whatever the priority.
    assert ("alice/alpha", "pkg/shared.py") in rows and ("bob/beta", "beta/shared.py") not in rows
    assert ("bob/beta", "beta/main.py") in rows


def test_a_git_file_pointing_outside_the_source_is_not_followed(tmp_path):
    from .conftest import MIT, git_repo

    private = git_repo(tmp_path / "private", "me", "thesis", {"secret_plan.py": "PLAN = 'do not publish'\n",
                                                             "LICENSE": MIT})  # fmt: skip
    untrusted = tmp_path / "untrusted" / "tool"
    untrusted.mkdir(parents=True)
    (untrusted / ".git").write_text(f"gitdir: {private / '.git'}\n")
    (untrusted / "main.py").write_text("def main():\n    return 'hello from the folder itself'\n")
    (untrusted / "LICENSE").write_text(MIT)
    build([str(untrusted)], tmp_path / "out", "v1", progress=False)
    paths = {r["path"] for r in read_column(tmp_path / "out", ["path"])}
    assert paths == {"main.py", "LICENSE"}  # the folder's own files; nothing of the other repository, no .git file


def test_damaged_and_hostile_inputs_are_skipped_and_counted(tmp_path):
    import io
    import os
    import subprocess
    import tarfile
    import zipfile

    from .conftest import MIT, git_repo

    good = b"def ok():\n    return 1\n"
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("LICENSE", MIT)
        zf.writestr("a.py", good.replace(b"ok", b"ok_a"))
        zf.writestr("b.py", b"def broken():\n    return 2\n")
    data = bytearray(zpath.read_bytes())
    at = data.index(b"def broken")
    data[at] ^= 0x01  # the member's bytes no longer match its CRC
    zpath.write_bytes(bytes(data))
    tpath = tmp_path / "cut.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        for name, body in (("LICENSE", MIT.encode()), ("c.py", good), ("d.py", os.urandom(200_000))):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    tpath.write_bytes(tpath.read_bytes()[: len(tpath.read_bytes()) * 2 // 3])  # truncated
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "LICENSE").write_text(MIT)
    (folder / "e.py").write_bytes(good.replace(b"ok", b"ok_e"))
    (folder / "latin1.py").write_bytes("# naïve café, déjà vu\nx = 1\n".encode("latin-1"))
    with open(folder / "huge.py", "wb") as sparse:  # a 3 GiB sparse file: never read
        sparse.truncate(3 << 30)
    (folder / os.fsdecode(b"bad\xffname.py")).write_bytes(good.replace(b"ok", b"ok_bad"))
    repo = git_repo(tmp_path / "g", "o", "g", {"LICENSE": MIT, "f.py": "y = 2\n", "g.py": "z = 3\n"})
    blob = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD:g.py"], capture_output=True, text=True
    ).stdout.strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # a missing blob
    report = build([str(zpath), str(tpath), str(folder), str(repo)], tmp_path / "out", "v1", progress=False)
    paths = {r["path"] for r in read_column(tmp_path / "out", ["path"])}
    assert {"a.py", "e.py", "f.py", "latin1.py"} <= paths and not {"b.py", "huge.py", "g.py"} & paths
    dropped = report.manifest["counts"]["dropped"]["ingest"]
    assert any(k.startswith("damaged archive member") for k in dropped) and dropped["git blob missing"] == 1
    assert any(k.startswith("damaged archive, rest skipped") for k in dropped) and dropped["file name not UTF-8"] == 1
    latin = next(
        r for r in read_column(tmp_path / "out", ["path", "content", "src_encoding"]) if r["path"] == "latin1.py"
    )
    assert "naïve café, déjà vu" in latin["content"] and latin["src_encoding"] == "cp1252"
    assert report.manifest["counts"]["language_detector"].startswith("go-enry")


def test_a_bad_config_and_an_all_opted_out_build_are_clear_errors(tmp_path, repos):
    from runstack.errors import InvalidArgumentError

    bad = tmp_path / "bad.toml"
    bad.write_text("shard_rows = [oops")
    with pytest.raises(InvalidArgumentError, match="--config"):
        BuildConfig.load(bad)
    registry = OptOutRegistry(tmp_path / "optout.txt")
    for owner in ("alice", "bob", "carol"):
        registry.add(owner)
    with pytest.raises(InvalidArgumentError, match="opt-out registry"):
        build([str(r) for r in repos], tmp_path / "out", "v1", optout=registry, progress=False)
    assert not (tmp_path / "out").exists()


def test_query_a_release_by_language_licence_repo_and_pattern(repos, tmp_path):
    import subprocess
    import sys

    from runstack.datasets_hub.query import query
    from runstack.errors import InvalidArgumentError

    from ..conftest import ROOT

    build([str(r) for r in repos], tmp_path / "out", "v1", progress=False)
    everything = query(tmp_path / "out", limit=None)
    assert everything.num_rows == len(read_column(tmp_path / "out", ["path"]))
    py = query(tmp_path / "out", language="python", license="MIT", limit=None).to_pylist()
    assert py and all(r["language"] == "Python" and "MIT" in r["detected_licenses"] for r in py)
    hits = query(tmp_path / "out", grep=r"def \w+\(", repo="alice", limit=None).to_pylist()
    assert hits and all(r["repo_name"].startswith("alice/") and "def " in r["content"] for r in hits)
    assert query(tmp_path / "out", license_type="non_permissive").num_rows == 0  # GPL was filtered at build
    assert len(query(tmp_path / "out", format="datasets", limit=2)) == 2
    with pytest.raises(InvalidArgumentError, match="regular expression"):
        query(tmp_path / "out", grep="(")
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    cli = subprocess.run([sys.executable, "-m", "runstack", "data", "query", str(tmp_path / "out"), "--grep", "def ",
                          "--format", "jsonl", "--limit", "0"], capture_output=True, text=True, env=env)  # fmt: skip
    assert cli.returncode == 0 and len(cli.stdout.splitlines()) == len(query(tmp_path / "out", grep="def ", limit=None))


def test_rows_carry_the_stack_v2_columns_from_git(tmp_path):
    import subprocess

    from .conftest import MIT, git_repo

    repo = git_repo(tmp_path / "src", "o", "r", {"LICENSE": MIT, "pkg/mod.py": "x = 1\n",
                                                 "pkg/conf.py": "db_password = 'correct-horse-42'\n"})  # fmt: skip
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "LICENSE").write_text(MIT)
    (folder / "p.py").write_text("y = 2\n")
    build([str(repo), str(folder)], tmp_path / "out", "v1", progress=False)
    rows = {r["path"]: r for r in read_column(tmp_path / "out", ["path", "blob_id", "content_id", "commit", "revision_id",
                                                                 "directory_id", "branch_name", "revision_date",
                                                                 "committer_date"])}  # fmt: skip
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    mod = rows["pkg/mod.py"]
    assert mod["revision_id"] == mod["commit"] == git("rev-parse", "HEAD")
    assert mod["directory_id"] == git("rev-parse", "HEAD:pkg") and mod["branch_name"] == git(
        "rev-parse", "--abbrev-ref", "HEAD"
    )
    assert mod["revision_date"] == git("show", "-s", "--format=%aI") and mod["committer_date"] == git(
        "show", "-s", "--format=%cI"
    )
    assert mod["content_id"] == mod["blob_id"]  # nothing redacted: the published bytes are the blob's
    assert rows["pkg/conf.py"]["content_id"] != rows["pkg/conf.py"]["blob_id"]  # redacted content has its own id
    assert rows["p.py"]["directory_id"] is None and rows["p.py"]["revision_date"] is None
    card = (tmp_path / "out" / "README.md").read_text()
    assert all(f"| `{name}` |" in card for name in ("content_id", "directory_id", "revision_date", "pii"))


@pytest.mark.parametrize("mode", ["mark", "drop", "off"])
def test_a_fork_is_found_at_repository_level(tmp_path, mode):
    from .conftest import MIT, git_repo

    files = {
        "LICENSE": MIT,
        **{f"pkg/m{i}.py": f"def f{i}(x):\n    return x * {i} + {i * i}  # module {i}\n" for i in range(6)},
    }
    git_repo(tmp_path / "src", "upstream", "lib", files)
    fork = dict(files, **{"pkg/m0.py": files["pkg/m0.py"] + "# a small local change in the fork of the project\n",
                          "extra.py": "def only_in_the_fork():\n    return 'mine'\n"})  # fmt: skip
    git_repo(tmp_path / "src", "forker", "lib", fork)
    other = git_repo(tmp_path / "src", "someone", "else", {"LICENSE": MIT, "z.py": "def z():\n    return 0\n"})
    sources = [Source(str(tmp_path / "src" / "upstream" / "lib"), priority=100.0),  # e.g. its stars: it survives
               Source(str(tmp_path / "src" / "forker" / "lib")), Source(str(other))]  # fmt: skip
    report = build(sources, tmp_path / "out", "v1", config=BuildConfig(repo_dedup=mode), progress=False)
    rows = {
        (r["repo_name"], r["path"]): r
        for r in read_column(tmp_path / "out", ["repo_name", "path", "repo_duplicate_of"])
    }
    if mode == "off":
        assert report.repo_copies == {} and ("forker/lib", "extra.py") in rows
        return
    assert report.repo_copies["forker/lib"]["of"] == "upstream/lib" and "someone/else" not in report.repo_copies
    assert report.manifest["counts"]["repository_copies"]["forker/lib"]["shared"] >= 6
    if mode == "mark":
        assert rows[("forker/lib", "extra.py")]["repo_duplicate_of"] == "upstream/lib"
        assert rows[("upstream/lib", "pkg/m1.py")]["repo_duplicate_of"] is None
    else:
        assert not [key for key in rows if key[0] == "forker/lib"] and ("someone/else", "z.py") in rows


@pytest.mark.slow
def test_two_spawned_workers_on_real_code_give_the_same_bytes(tmp_path):
    import sysconfig
    from pathlib import Path

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [Source(str(stdlib / name), repo_name=f"python/{name}") for name in ("json", "email", "http", "xml")]
    one = build(sources, tmp_path / "one", "v1", progress=False)
    two = build(sources, tmp_path / "two", "v1", workers=2, progress=False)
    assert one.files_out == two.files_out > 50
    for shard in one.manifest["shards"]:
        assert (tmp_path / "one" / shard["path"]).read_bytes() == (tmp_path / "two" / shard["path"]).read_bytes()


def test_a_zip_of_many_members_is_read_in_bounded_memory(tmp_path):
    import subprocess
    import sys
    import zipfile

    from ..conftest import ROOT
    from .conftest import MIT

    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("LICENSE", MIT)
        for i in range(400):  # highly compressible members just under the size limit
            zf.writestr(f"m{i}.py", f"# {i}\n" + "x = 1\n" * 150_000)
    # VmHWM is this process's own peak (ru_maxrss would include the test runner's, inherited at fork).
    code = ("import re, sys; from runstack.datasets_hub.ingest import Ingest\n"
            "n = sum(1 for _ in Ingest().read(sys.argv[1]))\n"
            "peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024\n"
            "print(n, peak)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}).stdout.split()  # fmt: skip
    assert int(out[0]) == 401 and int(out[1]) < 200  # MB peak: one member at a time, not the 360 MB unpacked
