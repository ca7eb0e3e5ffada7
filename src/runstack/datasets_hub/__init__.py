"""The code-dataset pipeline and its publishing.

    from runstack.datasets_hub import BuildConfig, Source, build
    build([Source("repos/alice/tool", priority=120), "code.tar.gz"], "dataset/", "v1")

Steps (``default_steps(config)`` plus any ``PipelineStep``/``Filter`` subclass or filter
function, ``build(..., steps=[...])``) run per source with ``rank``/``world_size``, locally or on
Dask/Spark (``executor=``); deduplication and publishing run over the whole build. See the
README for the details.
"""

from runstack.datasets_hub.build import BuildReport, Source, build
from runstack.datasets_hub.config import BuildConfig, MinHashConfig, QualityConfig
from runstack.datasets_hub.minhash import MinHash, MinHashLSH
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pipeline import Filter, PipelineStep
from runstack.datasets_hub.publish import diff, lookup
from runstack.datasets_hub.record import SourceFile
from runstack.datasets_hub.steps import FunctionFilter, default_steps, load_pipeline
from runstack.datasets_hub.tracking import use_dataset

__all__ = [
    "BuildConfig",
    "BuildReport",
    "Filter",
    "FunctionFilter",
    "MinHash",
    "MinHashConfig",
    "MinHashLSH",
    "OptOutRegistry",
    "PipelineStep",
    "QualityConfig",
    "Source",
    "SourceFile",
    "build",
    "default_steps",
    "diff",
    "load_pipeline",
    "lookup",
    "use_dataset",
]
