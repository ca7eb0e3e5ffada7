"""Artifacts: versions only on change, aliases, dedup in bytes, lineage, corruption, path safety, gc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import runstack
from runstack.core.artifacts import ArtifactRegistry
from runstack.core.store import Store
from runstack.errors import ArtifactCorruptError, ArtifactError


def _blob_bytes(store_dir: Path) -> int:
    return sum(p.stat().st_size for p in (store_dir / "artifacts" / "blobs").rglob("*") if p.is_file())


def _files(folder: Path, contents: dict[str, bytes]) -> Path:
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_versions_created_only_when_content_changes_and_aliases_move(store_dir, tmp_path):
    data = _files(tmp_path / "d", {"a.bin": b"a" * 1000, "sub/b.bin": b"b" * 2000})
    run = runstack.init()
    first = runstack.Artifact("ds", "dataset", metadata={"rows": 2})
    first.add_dir(data)
    assert run.log_artifact(first, aliases=["best"]).version == 0
    again = runstack.Artifact("ds", "dataset")
    again.add_dir(data)
    assert run.log_artifact(again).version == 0  # same content: the existing version
    (data / "a.bin").write_bytes(b"c" * 1000)
    changed = runstack.Artifact("ds", "dataset")
    changed.add_dir(data)
    assert run.log_artifact(changed).version == 1
    assert (
        changed.aliases == ["latest"]
        and first.manifest()["entries"][0]["sha256"] != changed.manifest()["entries"][0]["sha256"]
    )
    registry = ArtifactRegistry(Store(store_dir))
    assert (
        registry.get("ds:best").version == 0 and registry.get("ds").version == 1 and registry.get("ds:v0").version == 0
    )
    assert registry.get("ds:v0").metadata == {"rows": 2}
    with pytest.raises(ArtifactError, match="is logged and immutable"):
        first.add_file(data / "a.bin", name="other")


def test_shared_files_are_stored_once_measured_in_bytes(store_dir, tmp_path):
    big, small = os.urandom(50_000), os.urandom(3_000)
    run = runstack.init()
    for i in range(3):
        art = runstack.Artifact(f"model-{i}", "model")
        _files(tmp_path / f"m{i}", {"weights.bin": big, "extra.txt": small + bytes([i])})
        art.add_dir(tmp_path / f"m{i}")
        run.log_artifact(art)
    assert _blob_bytes(store_dir) == len(big) + 3 * (len(small) + 1)


def test_download_copies_by_default_so_writing_a_download_never_changes_the_store(store_dir, tmp_path):
    data = _files(tmp_path / "d", {"w.bin": b"weights-v1"})
    run = runstack.init()
    art = runstack.Artifact("model", "model")
    art.add_dir(data)
    run.log_artifact(art)
    target = run.use_artifact("model:latest").download(tmp_path / "out")
    (target / "w.bin").write_bytes(b"fine-tuned")  # what torch.save over the downloaded file does
    run.use_artifact("model:v0").verify()
    assert (run.use_artifact("model:v0").download(tmp_path / "again") / "w.bin").read_bytes() == b"weights-v1"


def test_a_corrupt_blob_is_repaired_when_the_same_content_is_logged_again(store_dir, tmp_path):
    data = _files(tmp_path / "d", {"w.bin": b"weights"})
    run = runstack.init()
    art = runstack.Artifact("model", "model")
    art.add_dir(data)
    run.log_artifact(art)
    blob = ArtifactRegistry(Store(store_dir)).blobs.path(art.manifest()["entries"][0]["sha256"])
    blob.chmod(0o644)
    blob.write_bytes(b"damaged")
    with pytest.raises(ArtifactCorruptError):
        run.use_artifact("model:v0").verify()
    again = runstack.Artifact("model", "model")
    again.add_dir(data)
    assert run.log_artifact(again).version == 0
    run.use_artifact("model:v0").verify()


def test_download_hardlinks_on_request_verifies_and_detects_corruption(store_dir, tmp_path):
    data = _files(tmp_path / "d", {"x.txt": b"hello", "y/z.txt": b"world"})
    run = runstack.init()
    art = runstack.Artifact("files", "dataset")
    art.add_dir(data)
    run.log_artifact(art)
    used = run.use_artifact("files:latest")
    target = used.download(tmp_path / "out", link=True)
    assert (target / "y" / "z.txt").read_bytes() == b"world"
    blob = ArtifactRegistry(Store(store_dir)).blobs.path(used.manifest()["entries"][0]["sha256"])
    assert os.path.samefile(target / "x.txt", blob)  # hardlinked, as asked
    used.verify()
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptError, match="x.txt changed on disk"):
        used.verify()
    with pytest.raises(ArtifactCorruptError, match="x.txt"):
        used.download(tmp_path / "again")
    assert not (tmp_path / "again" / "x.txt").exists()


def test_lineage_records_producer_and_consumers(store_dir, tmp_path):
    _files(tmp_path, {"f.txt": b"1"})
    producer = runstack.init(name="make")
    art = runstack.Artifact("data", "dataset")
    art.add_file(tmp_path / "f.txt")
    producer.log_artifact(art)
    producer.finish()
    consumer = runstack.init(name="train")
    consumer.use_artifact("data:v0")
    consumer.finish()
    (version,) = ArtifactRegistry(Store(store_dir)).versions("data")
    assert version["produced_by"] == producer.id and version["used_by"] == [consumer.id]


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b", "~/x"])
def test_names_that_escape_are_refused(store_dir, tmp_path, name):
    _files(tmp_path, {"f.txt": b"1"})
    art = runstack.Artifact("safe", "dataset")
    with pytest.raises(ArtifactError, match="leaves its folder"):
        art.add_file(tmp_path / "f.txt", name=name)


def test_symlink_pointing_outside_is_refused(store_dir, tmp_path):
    outside = _files(tmp_path / "secret", {"key.pem": b"secret"})
    data = _files(tmp_path / "d", {"ok.txt": b"ok"})
    (data / "link.pem").symlink_to(outside / "key.pem")
    art = runstack.Artifact("safe", "dataset")
    with pytest.raises(ArtifactError, match="links outside"):
        art.add_dir(data)


def test_bad_artifact_names_and_specs(store_dir):
    with pytest.raises(ArtifactError, match="artifact name 'a b' is not valid"):
        runstack.Artifact("a b", "dataset")
    runstack.init()
    with pytest.raises(ArtifactError, match="no artifact nope:latest"):
        runstack.run.use_artifact("nope")
    art = runstack.Artifact("x", "dataset")
    with pytest.raises(ArtifactError, match="may not look like versions"):
        runstack.run.log_artifact(art, aliases=["v3"])


def test_gc_removes_unreferenced_blobs_and_reports_bytes(store_dir, tmp_path):
    _files(tmp_path, {"f.txt": b"keep me"})
    run = runstack.init()
    art = runstack.Artifact("kept", "dataset")
    art.add_file(tmp_path / "f.txt")
    run.log_artifact(art)
    registry = ArtifactRegistry(Store(store_dir))
    registry.blobs.put_bytes(b"x" * 777)  # e.g. left by an interrupted log
    assert registry.gc(dry_run=True) == (1, 777)
    assert registry.gc() == (1, 777) and registry.gc() == (0, 0)
    assert registry.get("kept").download(tmp_path / "out").joinpath("f.txt").read_bytes() == b"keep me"


def test_references_are_recorded_not_copied(store_dir, tmp_path):
    _files(tmp_path, {"big.bin": b"z" * 100})
    run = runstack.init()
    art = runstack.Artifact("refs", "dataset")
    art.add_reference(f"file://{tmp_path / 'big.bin'}")
    art.add_reference("s3://bucket/data.parquet")
    run.log_artifact(art)
    entries = run.use_artifact("refs").manifest()["entries"]
    assert [e["path"] for e in entries] == ["big.bin", "data.parquet"]
    assert entries[0]["size"] == 100 and entries[1]["sha256"] is None and _blob_bytes(store_dir) == 0


def test_file_changed_between_add_and_log_is_refused_and_not_stored(store_dir, tmp_path):
    _files(tmp_path, {"w.bin": b"original"})
    art = runstack.Artifact("moving", "model")
    art.add_file(tmp_path / "w.bin")
    (tmp_path / "w.bin").write_bytes(b"changed!")
    run = runstack.init()
    with pytest.raises(ArtifactError, match="changed while it was being logged"):
        run.log_artifact(art)
    assert _blob_bytes(store_dir) == 0 and ArtifactRegistry(Store(store_dir)).versions("moving") == []
