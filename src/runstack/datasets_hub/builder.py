"""A ``datasets.GeneratorBasedBuilder`` that streams straight from raw sources through the pipeline.

    builder = CodeDatasetBuilder(sources=["repos/alice/alpha", "code.tar.gz"])
    for row in builder.as_streaming_dataset(split="train"):
        ...

Streaming sees each file once, so deduplication keeps the first copy met (sources in the
order given) instead of the best-ranked one; ``runstack data build`` ranks globally.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

try:
    import datasets
except ImportError as exc:  # the hub's streaming builder needs Hugging Face datasets
    from runstack.errors import MissingDependencyError

    raise MissingDependencyError("datasets", "datasets") from exc

from runstack.datasets_hub.build import Source, run_stage_one
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.minhash import MinHashLSH, bottom_k, bottom_k_jaccard, shingle_hashes, signatures
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.record import SourceFile, features

FEATURES = features()


@dataclass
class CodeDatasetConfig(datasets.BuilderConfig):
    """Which sources to read, with the same settings as ``runstack data build``."""

    sources: tuple[str, ...] = ()
    build: BuildConfig = field(default_factory=BuildConfig)
    optout: str | None = None


class CodeDatasetBuilder(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = CodeDatasetConfig
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description="Source code through runstack's pipeline", features=FEATURES)

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={})]

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        config: CodeDatasetConfig = self.config  # type: ignore[assignment]
        settings = config.build.minhash
        registry = OptOutRegistry(config.optout) if config.optout else None
        lsh = MinHashLSH(settings.threshold, settings.num_perm, (settings.bands, settings.rows))
        seen: set[str] = set()
        sketches: dict[str, Any] = {}
        for item in run_stage_one([Source(s) for s in config.sources], config.build, registry):
            if not isinstance(item, SourceFile):
                continue
            digest = hashlib.sha256(item.content.encode()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            hashes, docs = shingle_hashes([item.content], settings.ngram)
            sig = signatures(hashes, docs, 1, settings.num_perm, settings.seed)[0]
            sketch = bottom_k(hashes, docs, 1, settings.verify_k)[0]
            # Candidates are verified as build() verifies them: Jaccard of the bottom-k shingle sketches.
            if any(
                bottom_k_jaccard(sketch, sketches[k], settings.verify_k) >= settings.threshold for k in lsh.query(sig)
            ):
                continue
            lsh.insert(digest, sig)
            sketches[digest] = sketch
            yield f"{item.repo_name}/{item.path}", item.row()
