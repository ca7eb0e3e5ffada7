"""Property test: whatever mix of value kinds is logged comes back exactly, in order."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runstack

keys = st.sampled_from(["loss", "acc", "lr", "flag", "train/x", "val/y/z", "ü-ñ"])
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)
records = st.lists(st.tuples(st.dictionaries(keys, values, min_size=1, max_size=5),
                             st.one_of(st.none(), st.integers(0, 50))), min_size=1, max_size=40)  # fmt: skip


def _same(a, b):
    a = a.item() if hasattr(a, "item") else a
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records)
def test_every_value_round_trips(store_dir, records):
    run = runstack.init()
    expected = []
    step = 0
    for data, given_step in records:
        at = step if given_step is None else given_step
        run.log(data, step=given_step)
        expected.append((at, data))
        step = at + 1
    run.finish()
    table = runstack.Api(store_dir).run(run.id).history(format="arrow").to_pylist()
    # Adjacent records with one step form one row, later values winning.
    rows: list[tuple[int, dict]] = []
    for at, data in expected:
        if rows and rows[-1][0] == at:
            rows[-1][1].update(data)
        else:
            rows.append((at, dict(data)))
    assert [r["_step"] for r in table] == [at for at, _ in rows]
    frame = runstack.Api(store_dir).run(run.id).history()
    for i, (_, data) in enumerate(rows):
        for key, value in data.items():
            assert _same(frame[key].iloc[i], value), (key, value, frame[key].iloc[i])
        for key in set(frame.columns) - set(data) - {"_step", "_timestamp"}:
            assert frame[key].isna().iloc[i] or frame[key].iloc[i] is None
