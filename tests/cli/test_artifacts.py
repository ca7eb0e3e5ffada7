from __future__ import annotations

from click.testing import CliRunner

from runstack.cli.main import main


def test_put_get_ls_lineage_gc(store_dir, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "sub" / "b.txt").write_text("beta")
    runner = CliRunner()
    out = runner.invoke(
        main, ["artifact", "put", str(data), "--name", "corpus", "--type", "dataset", "--alias", "best"]
    )
    assert out.exit_code == 0 and "corpus:v0 (2 files, 9 bytes) aliases: best, latest" in out.output, out.output
    out = runner.invoke(main, ["artifact", "get", "corpus:best", "--root", str(tmp_path / "dl")])
    assert out.exit_code == 0 and (tmp_path / "dl" / "sub" / "b.txt").read_text() == "beta"
    out = runner.invoke(main, ["artifact", "ls"])
    assert "corpus" in out.output and "best, latest" in out.output
    out = runner.invoke(main, ["artifact", "lineage", "corpus"])
    assert "corpus:v0 [best, latest]" in out.output and "produced by: (no run: artifact put)" in out.output
    out = runner.invoke(main, ["artifact", "gc"])
    assert "unreferenced blobs: 0, freed 0 bytes" in out.output
    out = runner.invoke(main, ["artifact", "get", "corpus:v9"])
    assert out.exit_code == 1 and "no artifact corpus:v9" in out.output
