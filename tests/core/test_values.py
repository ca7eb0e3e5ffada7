"""Bad input to log(): a clear error naming the key, and nothing already logged is lost."""

from __future__ import annotations

import numpy as np
import pytest

import runstack
from runstack.errors import InvalidMetricError, RunstackError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "adam"}, "cannot log 'name' = 'adam': log\\(\\) stores numbers and bools"),
        ({"x": None}, "'x' = None: None is not a number"),
        ({"x": object()}, "object is not a number or bool"),
        ({"x": [1, 2]}, "list is not a number or bool"),
        ({"": 1.0}, "metric names must not be empty"),
        ({"  ": 1.0}, "metric names must not be empty"),
        ({"k" * 300: 1.0}, "at most 256 characters"),
        ({3: 1.0}, "metric names must be strings"),
        ({"_step": 1}, "_step is reserved"),
        ({"a\nb": 1}, "control characters"),
        ({"big": 2**70}, "'big' = 1180591620717411303424: integers must fit in 64 bits"),
        ({"a": np.zeros((2, 2))}, "shape \\(2, 2\\) is not a scalar"),
        ({"nested": {}}, "'nested' = {}: an empty dict has no metrics"),
        ({"a": {"b": 1}, "a/b": 2}, "'a/b' = 2: this name appears twice"),
        ([("a", 1)], "log\\(\\) takes a dict"),
    ],
)
def test_bad_metric_gets_clear_error_and_history_survives(store_dir, data, message):
    run = runstack.init()
    run.log({"good": 1.0})
    with pytest.raises(InvalidMetricError, match=message):
        run.log(data)
    run.log({"good": 2.0})
    run.finish()
    frame = runstack.Api(store_dir).run(run.id).history()
    assert frame["good"].tolist() == [1.0, 2.0]
    assert frame["_step"].tolist() == [0, 1]


def test_torch_tensor_that_is_not_a_scalar(store_dir):
    torch = pytest.importorskip("torch")
    run = runstack.init()
    with pytest.raises(InvalidMetricError, match="'t' = .*shape \\(3,\\) is not a scalar"):
        run.log({"t": torch.ones(3)})


def test_int_outside_int64_after_schema_is_cached(store_dir):
    run = runstack.init()
    run.log({"n": 1})
    with pytest.raises(InvalidMetricError, match="'n' = 9223372036854775808"):
        run.log({"n": 2**63})
    run.log({"n": 3})
    assert run.history()["n"].tolist() == [1, 3]


def test_type_changes_of_a_key_are_kept_per_value(store_dir):
    run = runstack.init()
    for value in (1, 2.5, True, 2**60):
        run.log({"v": value})
    values = run.history()["v"].tolist()
    assert values == [1, 2.5, True, 2**60]
    assert [type(v) for v in values] == [int, float, bool, int]


def test_errors_share_one_root():
    assert issubclass(InvalidMetricError, RunstackError)


def test_bad_config_names_the_key(store_dir):
    from runstack.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config\['config.fn'\].*function is not JSON-serialisable"):
        runstack.init(config={"fn": lambda: 1})
    run = runstack.init(config={"ok": 1})
    with pytest.raises(ConfigError, match=r"config\['opt.x'\].*object is not JSON-serialisable"):
        run.config.update({"opt": {"x": object()}})
    with pytest.raises(ConfigError, match="config keys must be strings"):
        run.config.update({"m": {1: 2}})
    assert runstack.Api(store_dir).run(run.id).config == {"ok": 1}
