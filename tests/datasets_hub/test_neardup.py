"""Near-dedup as map and reduce rounds (band keys shuffled into buckets) equals the in-memory one."""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from runstack.datasets_hub.cache import write_spill
from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.dedup import NearDeduplicator, clusters, component_roots, components
from runstack.datasets_hub.executors import Engine, _beside
from runstack.datasets_hub.ingest import git_blob_id
from runstack.datasets_hub.minhash import bottom_k_jaccard, candidate_pairs
from runstack.datasets_hub.neardup import SpillRows, near_pairs
from runstack.datasets_hub.record import SourceFile


def _documents(count: int, seed: int = 7) -> list[str]:
    """Families of near copies (a few words changed) among unrelated documents."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(400)]
    out: list[str] = []
    while len(out) < count:
        base = [rng.choice(words) for _ in range(rng.randint(20, 300))]
        for _ in range(rng.choice([1, 1, 2, 4])):
            copy = list(base)
            for _ in range(rng.randint(0, max(1, len(copy) // 30))):
                copy[rng.randrange(len(copy))] = rng.choice(words)
            out.append(" ".join(copy))
    return out[:count]


def _spills(tmp_path, texts: list[str], per_spill: int, config: MinHashConfig):
    spills = []
    for start in range(0, len(texts), per_spill):
        records = [SourceFile(content=t, path=f"f{start + i}.py", repo_name=f"r/{start}", blob_id=git_blob_id(t.encode()))
                   for i, t in enumerate(texts[start : start + per_spill])]  # fmt: skip
        target = tmp_path / f"s{start:04d}.pkl"
        write_spill(target, iter([*records, []]), config)
        spills.append(target)
    return spills


@pytest.mark.parametrize(("tasks", "buckets"), [(1, 1), (3, 5), (8, 16)])
def test_rounds_give_the_in_memory_result(tmp_path, tasks, buckets):
    config = MinHashConfig()
    texts = _documents(240)
    spills = _spills(tmp_path, texts, 17, config)
    # Some rows are dropped before near dedup (exact duplicates, opt-outs): the rounds see only the rest.
    rows = [np.array([r for r in range(17) if (s * 17 + r) % 11 != 3 and s * 17 + r < len(texts)], dtype=np.int64)
            for s in range(len(spills))]  # fmt: skip
    kept = [s * 17 + r for s, chosen in enumerate(rows) for r in chosen]
    keys = [(i % 5, f"k{i:05d}") for i in kept]
    memory = NearDeduplicator(config)
    for i, key in zip(kept, keys, strict=True):
        memory.add(texts[i], key)
    expected = memory.result()

    def run(task, shares):
        return [task(*share) for share in shares]

    found = clusters(keys, *near_pairs(run, [str(s) for s in spills], SpillRows.of(rows), config, tmp_path / "bands",
                                        tasks, buckets))  # fmt: skip
    assert expected.verified_pairs > 20 and sum(expected.survivors) < len(kept)  # there is something to find
    assert (found.survivors, found.cluster_of) == (expected.survivors, expected.cluster_of)
    assert (found.candidate_pairs, found.verified_pairs) == (expected.candidate_pairs, expected.verified_pairs)
    assert expected.candidate_pairs == len(candidate_pairs(memory.signatures(), config.bands, config.rows))


def test_an_engine_keeps_its_workers_between_rounds():
    with Engine("local", workers=2) as engine:  # this process, and one spawned beside it that joins once up
        engine.start()
        seen: set[int] = set()
        for _ in range(200):
            seen |= set(engine.run(_nap, [(0.02,)] * 8))
            if len(seen) == 2:
                break
        later = set(engine.run(_nap, [(0.02,)] * 8)) | set(engine.run(_nap, [(0.02,)] * 8))
    assert os.getpid() in seen and len(seen) == 2 and later <= seen


def test_a_failed_share_stops_the_round_and_the_engine_runs_the_next():
    with Engine("local", workers=2) as engine:
        for bad in (3, 11):  # whichever process runs it
            with pytest.raises(ValueError, match=f"share {bad} is bad"):
                engine.run(_check, [(i, bad) for i in range(16)])
        finished: list[int] = []
        assert engine.run(_check, [(i, -1) for i in range(16)], finished.append) == list(range(16))
    assert sorted(finished) == list(range(16))


def test_a_worker_still_starting_is_given_no_share_and_joins_once_up():
    up: Future[int] = Future()  # the pool's worker is not up yet: this thread takes every share, waiting for nothing
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        finished: list[int] = []
        names = _beside(pool, [up], _thread_name, [(0.0,)] * 6, finished.append)
        assert names == [threading.current_thread().name] * 6 and sorted(finished) == list(range(6))
        up.set_result(0)
        names = _beside(pool, [up], _thread_name, [(0.01,)] * 40, lambda _: None)
    assert {name.split("_")[0] for name in names} == {threading.current_thread().name, "pool"}


def _thread_name(seconds: float) -> str:
    time.sleep(seconds)
    return threading.current_thread().name


def _check(index: int, bad: int) -> int:
    time.sleep(0.01)
    if index == bad:
        raise ValueError(f"share {index} is bad")
    return index


def _nap(seconds: float) -> int:
    time.sleep(seconds)  # long enough that both workers take some
    return os.getpid()


def test_bottom_k_jaccard_is_the_share_of_the_unions_k_smallest_in_both():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        n, m, shared, k = (int(x) for x in rng.integers(0, 300, 4))
        shared = min(shared, n, m)
        values = rng.choice(10_000, size=n + m, replace=False).astype(np.uint64)
        a, b = np.sort(values[:n]), np.sort(np.concatenate([values[:shared], values[n : n + m - shared]]))
        k = k + 1
        a, b = a[:k], b[:k]  # sketches: each the k smallest of its document, values distinct
        in_a, in_b = set(a.tolist()), set(b.tolist())
        union = sorted(in_a | in_b)[:k]
        expected = 1.0 if not union else sum(v in in_a and v in in_b for v in union) / len(union)
        assert bottom_k_jaccard(a, b, k) == expected


def test_components_over_verified_pairs_keep_each_components_best_ranked_document():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        pairs = np.unique(np.sort(rng.integers(0, n, (int(rng.integers(0, 40)), 2)), axis=1), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        keys = [(int(rng.integers(0, 3)), f"k{int(rng.integers(0, 5))}") for _ in range(n)]  # ties broken by id
        asked: list[int] = []

        def rank_of(docs, keys=keys, asked=asked):
            asked.extend(docs)
            return [keys[d] for d in docs]

        # The components, found by walking the graph from each document.
        neighbours: dict[int, set[int]] = {}
        for a, b in pairs.tolist():
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        expected: dict[int, int] = {}
        for start in neighbours:
            seen, todo = {start}, [start]
            while todo:
                for other in neighbours[todo.pop()] - seen:
                    seen.add(other)
                    todo.append(other)
            expected[start] = min(seen, key=lambda d: (keys[d], d))
        assert components(pairs, rank_of) == expected
        assert sorted(asked) == sorted(neighbours)  # only the documents in pairs
        dense = clusters(keys, pairs, len(pairs))  # every document: the same, with singletons surviving
        assert dense.cluster_of == [expected.get(i) for i in range(n)]
        assert dense.survivors == [expected.get(i, i) == i for i in range(n)]
        docs, roots = component_roots(pairs)  # in numpy: each document's root is its component's smallest
        assert docs.tolist() == sorted(neighbours)
        assert roots.tolist() == [min(_component(neighbours, d)) for d in docs.tolist()]


def test_component_roots_of_long_chains_and_stars():
    rng = np.random.default_rng(5)
    order = rng.permutation(5000)  # a chain through every document in a random order, and a star
    pairs = np.sort(np.concatenate([np.stack([order[:-1], order[1:]], axis=1),
                                    np.stack([np.full(99, 7000), np.arange(6001, 6100)], axis=1)]), axis=1)  # fmt: skip
    docs, roots = component_roots(pairs)
    assert len(docs) == 5100 and set(roots[docs < 5000].tolist()) == {0} and set(roots[docs > 6000].tolist()) == {6001}
    assert len(component_roots(np.zeros((0, 2), dtype=np.int64))[0]) == 0


def _component(neighbours: dict[int, set[int]], start: int) -> set[int]:
    seen, todo = {start}, [start]
    while todo:
        for other in neighbours[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    return seen


def test_spill_rows_joined_and_without_match_an_array_per_spill():
    rng = np.random.default_rng(3)
    parts = [np.sort(rng.choice(50, rng.integers(0, 12), replace=False)).astype(np.int32) for _ in range(40)]
    rows = SpillRows.joined([SpillRows.of(parts[:15]), SpillRows.of([]), SpillRows.of(parts[15:])])
    assert len(rows) == 40 and [rows[s].tolist() for s in range(40)] == [p.tolist() for p in parts]
    docs = np.arange(len(rows.flat))
    assert rows.spill_of(docs).tolist() == [s for s, p in enumerate(parts) for _ in p]
    gone = np.array([(s, r) for s, p in enumerate(parts) for r in p.tolist() if rng.random() < 0.3], dtype=np.int64)
    left = rows.without(gone.reshape(-1, 2))
    expected = [np.setdiff1d(p, gone[gone[:, 0] == s, 1]).tolist() for s, p in enumerate(parts)]
    assert [left[s].tolist() for s in range(40)] == expected and len(left.flat) == len(rows.flat) - len(gone)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_build_keeps_each_near_duplicate_components_best_ranked_file(tmp_path, workers):
    """Many near-duplicate families spread over repositories: the build's survivors and clusters
    (components joined in numpy, survivors chosen by the workers' map and reduce by component) are
    the in-memory near dedup's over the same processed files."""
    import pyarrow.parquet as pq

    from runstack.datasets_hub.build import build, run_stage_one
    from runstack.datasets_hub.config import BuildConfig
    from runstack.datasets_hub.dedup import rank_key

    sources = _near_copies(tmp_path / "src")
    config = BuildConfig()
    records = [r for r in run_stage_one(sources, config, None) if not isinstance(r, list)]
    memory = NearDeduplicator(config.minhash)
    for record in records:
        memory.add(record.content, rank_key(record))
    expected = memory.result()
    assert expected.verified_pairs > 100 and sum(expected.survivors) < len(records) / 2  # mostly near copies
    want = {(records[i].repo_name, records[i].path): None if expected.cluster_of[i] is None
            else records[expected.cluster_of[i]].blob_id for i in range(len(records)) if expected.survivors[i]}  # fmt: skip
    report = build(sources, tmp_path / "out", "v1", config, workers=workers)
    got = {}
    for shard in report.manifest["shards"]:
        for row in pq.read_table(tmp_path / "out" / shard["path"]).to_pylist():
            got[(row["repo_name"], row["path"])] = row["near_dup_cluster"]
    assert got == want and report.near_duplicates == len(records) - len(want)


def _near_copies(root):
    """Six repositories holding near copies (a few lines changed) of forty files, each about half."""
    from runstack.datasets_hub.build import Source

    rng = random.Random(11)
    names = [f"name_{i}" for i in range(300)]
    families = [[f"{rng.choice(names)} = call({rng.choice(names)}, {rng.randint(0, 99)})" for _ in range(60)]
                for _ in range(40)]  # fmt: skip
    sources = []
    for r in range(6):
        folder = root / f"repo{r}"
        folder.mkdir(parents=True)
        for f, lines in enumerate(families):
            if rng.random() < 0.5:
                copy = [rng.choice(names) + " = 1" if rng.random() < 0.04 else line for line in lines]
                (folder / f"mod{f}.py").write_text("\n".join(copy) + f"\n# repo {r}\n")
        sources.append(Source(str(folder), repo_name=f"owner{r % 3}/repo{r}", priority=float(r % 2)))
    return sources


def test_stage_two_tasks_grow_with_the_data_and_give_the_same_release(tmp_path, monkeypatch):
    """Task counts follow the data (an index task per so many spill bytes, a bucket per so many
    files, a verify task per so many pairs): many small tasks give the release a few large ones do."""
    import importlib

    from runstack.datasets_hub import neardup, stages

    build_module = importlib.import_module("runstack.datasets_hub.build")  # the module, not the function

    sources = _near_copies(tmp_path / "src")
    few = build_module.build(sources, tmp_path / "few", "v1")
    rounds: dict[str, int] = {"verify": 0}
    near_pairs, read_keys, verify = stages.near_pairs, build_module.read_keys, neardup.verify

    def counted_near(run, spills, rows_kept, config, folder, tasks, buckets):
        rounds["buckets"] = buckets
        return near_pairs(run, spills, rows_kept, config, folder, tasks, buckets)

    def counted_keys(run, spills, sizes, late, late_stats, tasks, folder):
        found = read_keys(run, spills, sizes, late, late_stats, tasks, folder)
        rounds["index"] = len(found.groups)
        return found

    def counted_verify(pairs, *args):
        rounds["verify"] += 1
        assert len(pairs) <= 7
        return verify(pairs, *args)

    monkeypatch.setattr(build_module, "TASK_SPILL_BYTES", 1)  # an index task per spill
    monkeypatch.setattr(stages, "BUCKET_FILES", 10)
    monkeypatch.setattr(neardup, "VERIFY_PAIRS", 7)
    monkeypatch.setattr(stages, "near_pairs", counted_near)
    monkeypatch.setattr(build_module, "read_keys", counted_keys)
    monkeypatch.setattr(neardup, "verify", counted_verify)
    many = build_module.build(sources, tmp_path / "many", "v1")
    assert rounds["index"] == len(sources) and rounds["buckets"] == -(-many.files_in // 10) > 4
    assert rounds["verify"] >= many.near_candidate_pairs / 7 and many.near_duplicates == few.near_duplicates > 20
    assert files_of(tmp_path / "many") == files_of(tmp_path / "few")


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_spill_is_signed_batch_by_batch_as_its_records_come(tmp_path, monkeypatch):
    """A large repository's contents are signed as they stream to its spill, never all held: the
    signatures and sketches are those of the whole list signed at once."""
    from runstack.datasets_hub import dedup
    from runstack.datasets_hub.cache import read_signatures, read_sketches

    config, texts = MinHashConfig(), _documents(120)
    expected_sigs, expected_sketches = dedup.sign(texts, config)
    held: list[int] = []
    sign = dedup.sign

    def counted(batch, minhash):
        held.append(len(batch))
        return sign(batch, minhash)

    monkeypatch.setattr(dedup, "BATCH_BYTES", 2000)
    monkeypatch.setattr(dedup, "sign", counted)
    spills = _spills(tmp_path, texts, len(texts), config)
    assert len(held) > 10 and max(held) < len(texts) / 5  # in batches, as the records came
    assert np.array_equal(read_signatures(spills[0]), expected_sigs)
    flat, bounds = read_sketches(spills[0])
    assert [flat[bounds[i] : bounds[i + 1]].tolist() for i in range(len(texts))] == [
        s.tolist() for s in expected_sketches
    ]
