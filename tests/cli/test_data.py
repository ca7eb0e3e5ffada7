"""``runstack data`` end to end on git repositories made by the test."""

from __future__ import annotations

from click.testing import CliRunner

from runstack.cli.main import main

from ..datasets_hub.conftest import make_repos


def test_build_optout_lookup_diff(tmp_path, monkeypatch):
    repos = make_repos(tmp_path)
    registry = tmp_path / "optout.jsonl"
    monkeypatch.setenv("RUNSTACK_OPTOUT", str(registry))
    runner = CliRunner()
    out = runner.invoke(main, ["data", "build", *map(str, repos), "--out", str(tmp_path / "v1"), "--version", "v1"])
    assert out.exit_code == 0, out.output
    for line in ("files in", "dropped by license: licence non_permissive", "near duplicates", "language: Python",
                 "licence: permissive", "PII replaced: email", "files out"):  # fmt: skip
        assert line in out.output, (line, out.output)
    out = runner.invoke(main, ["data", "lookup", "--repo", "alice/alpha", "--dataset", str(tmp_path / "v1")])
    assert "alice/alpha: 6 file(s) in version v1" in out.output and "alice/alpha/pkg/core.py" in out.output
    assert "added alice" in runner.invoke(main, ["data", "optout", "add", "alice"]).output
    assert runner.invoke(main, ["data", "optout", "ls"]).output.split() == ["alice"]
    out = runner.invoke(main, ["data", "build", *map(str, repos), "--out", str(tmp_path / "v2"), "--version", "v2"])
    assert "dropped by opt-out: opted out" in out.output
    out = runner.invoke(main, ["data", "diff", str(tmp_path / "v1"), str(tmp_path / "v2")])
    # With alice gone, carol's near copy of alice's file is no longer a duplicate: it comes in.
    assert "1 added, 6 removed" in out.output and "carol/gamma/near.py" in out.output
    assert "removed alice" in runner.invoke(main, ["data", "optout", "rm", "alice"]).output
    out = runner.invoke(main, ["data", "build", str(repos[0]), "--out", str(tmp_path / "v1"), "--version", "v3"])
    assert out.exit_code == 1 and "an empty or new folder" in out.output
