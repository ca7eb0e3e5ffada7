"""``import runstack`` stays light: no ML framework, numpy, pandas or pyarrow."""

from __future__ import annotations

import json

from .conftest import run_python

HEAVY = ["torch", "transformers", "lightning", "pytorch_lightning", "keras", "xgboost", "lightgbm", "accelerate",
         "datasets", "numpy", "pandas", "pyarrow", "psutil", "rich", "click", "optuna", "yaml", "psycopg", "starlette",
         "http.client"]  # fmt: skip


def test_import_pulls_in_no_framework():
    proc = run_python(f"""
        import json, sys
        import runstack
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """)
    assert json.loads(proc.stdout) == []


def test_datasets_hub_and_core_never_import_integrations():
    proc = run_python("""
        import json, sys
        import runstack.datasets_hub.build, runstack.core.api, runstack.cli.main
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("runstack.integrations"))))
        """)
    assert json.loads(proc.stdout) == []
