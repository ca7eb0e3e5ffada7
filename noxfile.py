"""Sessions: ``tests`` (everything, as CI runs it), ``core`` (no framework installed),
one per framework extra, ``lint``, ``types`` and ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

# torch first and pinned: an unpinned torch pulled in by a framework would be a multi-GB CUDA build.
TORCH = "torch==2.13.0"
FRAMEWORK_EXTRAS = (
    "lightning",
    "transformers",
    "keras",
    "lightgbm",
    "accelerate",
    "datasets",
    "gpu",
    "sweeps",
    "ui",
    "server",
    "dask",
    "spark",
    "scancode",
)
ENV = {"HF_HUB_OFFLINE": "1", "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite with every framework installed (CI runs this)."""
    session.install(TORCH, "xgboost-cpu")
    _install(session, ",".join((*FRAMEWORK_EXTRAS, "dev")))
    session.run("python", "-m", "pytest", "-q", "-rs", *session.posargs, env=ENV)


@nox.session
def core(session: nox.Session) -> None:
    """The core tracker with no ML framework installed: framework tests skip cleanly."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", "-rs", "tests/core", "tests/cli", "tests/test_imports.py",
                "tests/test_exported_members.py", *session.posargs, env=ENV)  # fmt: skip


@nox.session
@nox.parametrize("extra", FRAMEWORK_EXTRAS)
def framework(session: nox.Session, extra: str) -> None:
    """One framework extra on its own, with its integration tests."""
    _install(session, f"{extra},dev")
    session.run("python", "-m", "pytest", "-q", "-rs", "tests/integrations", *session.posargs, env=ENV)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    session.install("mypy", "-e", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark; each prints one summary line."""
    _install(session, "sweeps,ui,dev")
    session.run("python", "bench/log_overhead.py", env=ENV)
    session.run("python", "bench/kill_recovery.py", env=ENV)
    session.run("python", "bench/reliability.py", env=ENV)
    session.run("python", "bench/sweep_overhead.py", env=ENV)
    session.run("python", "bench/ui_history.py", env=ENV)
    session.run("python", "bench/system_metrics.py", env=ENV)


@nox.session(name="bench-server")
def bench_server(session: nox.Session) -> None:
    """The team server under load (needs PostgreSQL: Debian's postgresql package)."""
    _install(session, "server,dev")
    session.run("python", "bench/server_load.py", env=ENV)


@nox.session(name="bench-hub")
def bench_hub(session: nox.Session) -> None:
    """The code-dataset hub's benchmarks (needs the datasets extra and the frameworks' sources)."""
    _install(session, "datasets,transformers,scancode,dask,spark,dev")
    # datatrove, the peer of pipeline_scale; its xxhash wrapper hashes str, which xxhash 4 refuses.
    session.install("datatrove", "orjson", "spacy", "xxhash<4", "credsweeper")
    for script in (
        "pipeline_scale",
        "minhash_throughput",
        "near_dedup_quality",
        "pipeline_throughput",
        "license_agreement",
        "pii_quality",
        "encoding_guess",
        "query_grep",
    ):
        session.run("python", f"bench/{script}.py", env=ENV)
