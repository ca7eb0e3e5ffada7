"""Reading a published dataset with Hugging Face ``datasets``, streaming and not, and the builder."""

from __future__ import annotations

import pytest

datasets = pytest.importorskip("datasets")

from runstack.datasets_hub.build import build  # noqa: E402


@pytest.fixture
def published(repos, tmp_path):
    out = tmp_path / "published"
    build([str(r) for r in repos], out, "v1", progress=False)
    return out


def test_load_dataset_streaming_and_not(published, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    stream = datasets.load_dataset(str(published), "python", split="train", streaming=True)
    streamed = list(stream)
    assert streamed and {r["language"] for r in streamed} == {"Python"}
    assert {"blob_id", "content", "license_type", "near_dup_cluster"} <= set(streamed[0])
    table = datasets.load_dataset(str(published), "python", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(table["path"]) == sorted(r["path"] for r in streamed)
    everything = datasets.load_dataset(str(published), split="train", streaming=True)
    assert {r["language"] for r in everything} >= {"Python", "Rust", "JavaScript"}


def test_generator_builder_streams_from_raw_sources(repos, tmp_path):
    from runstack.datasets_hub.builder import CodeDatasetBuilder

    builder = CodeDatasetBuilder(sources=tuple(str(r) for r in repos), cache_dir=str(tmp_path / "cache"))
    rows = list(builder.as_streaming_dataset(split="train"))
    paths = {(r["repo_name"], r["path"]) for r in rows}
    assert ("alice/alpha", "pkg/shared.py") in paths and ("carol/gamma", "near.py") not in paths
    assert ("bob/beta", "beta/main.py") not in paths  # GPL, filtered as in a build
    assert all("AKIAIOSFODNN7EXAMPLE" not in r["content"] for r in rows)
