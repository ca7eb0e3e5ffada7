"""The code-dataset pipeline and its publishing.

    from runstack.datasets_hub import BuildConfig, Source, build
    build([Source("repos/alice/tool", priority=120), "code.tar.gz"], "dataset/", "v1")

Steps (``PipelineStep``/``Filter`` subclasses) run per source with ``rank``/``world_size``;
deduplication and publishing run over the whole build. See the README for the details.
"""

from runstack.datasets_hub.build import BuildReport, Source, build
from runstack.datasets_hub.config import BuildConfig, MinHashConfig, QualityConfig
from runstack.datasets_hub.minhash import MinHash, MinHashLSH
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pipeline import Filter, PipelineStep
from runstack.datasets_hub.publish import diff, lookup
from runstack.datasets_hub.record import SourceFile

__all__ = [
    "BuildConfig",
    "BuildReport",
    "Filter",
    "MinHash",
    "MinHashConfig",
    "MinHashLSH",
    "OptOutRegistry",
    "PipelineStep",
    "QualityConfig",
    "Source",
    "SourceFile",
    "build",
    "diff",
    "lookup",
]
