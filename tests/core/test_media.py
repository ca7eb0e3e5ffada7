"""Media in run.log: round trips, content-hash dedup, and errors that name the key."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import runstack
from runstack.errors import InvalidMetricError


def _read(store_dir, run):
    run.finish()
    return runstack.Api(store_dir).run(run.id).history()


def _media_files(store_dir):
    return sorted(p for p in (store_dir / "media").rglob("*") if p.is_file())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3, 4]))))
def test_image_round_trips_pixels(store_dir, pixels):
    run = runstack.init()
    run.log({"img": runstack.Image(pixels, caption="x")})
    image = _read(store_dir, run)["img"][0]
    expected = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    assert np.array_equal(image.to_numpy(), expected) and image.caption == "x" and image.path.exists()


def test_image_sources_and_float_scaling(store_dir):
    torch = pytest.importorskip("torch")
    from PIL import Image as PILImage

    chw = torch.zeros(3, 4, 5)
    chw[0] = 1.0
    pil = PILImage.fromarray(np.full((2, 3), 7, dtype=np.uint8))
    run = runstack.init()
    run.log({"t": runstack.Image(chw), "p": runstack.Image(pil), "f": runstack.Image(np.full((2, 2), 0.5))})
    row = _read(store_dir, run).iloc[0]
    assert row["t"].to_numpy().shape == (4, 5, 3) and (row["t"].to_numpy()[:, :, 0] == 255).all()
    assert (row["p"].to_numpy() == 7).all() and (row["f"].to_numpy() == 128).all()


def test_same_image_twice_is_stored_once_and_kept_at_each_step(store_dir):
    run = runstack.init()
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    run.log({"img": runstack.Image(pixels)})
    run.log({"img": runstack.Image(pixels.copy()), "loss": 1.0})
    frame = _read(store_dir, run)
    assert frame["_step"].tolist() == [0, 1] and frame.loc[1, "loss"] == 1.0
    assert len(_media_files(store_dir)) == 1
    assert frame["img"][0].path == frame["img"][1].path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.integers(1, 30))
def test_histogram_round_trips(store_dir, values, bins):
    run = runstack.init()
    run.log({"h": runstack.Histogram(values, bins=bins)})
    hist = _read(store_dir, run)["h"][0]
    counts, edges = np.histogram(np.array(values), bins=bins)
    assert hist.counts == counts.tolist() and hist.bins == pytest.approx(edges.tolist())


def test_histogram_from_precomputed_bins_and_torch(store_dir):
    torch = pytest.importorskip("torch")
    run = runstack.init()
    run.log({"pre": runstack.Histogram(np_histogram=([1, 2], [0.0, 0.5, 1.0])),
             "t": runstack.Histogram(torch.tensor([1.0, 2.0, float("nan")]), bins=2)})  # fmt: skip
    row = _read(store_dir, run).iloc[0]
    assert row["pre"].counts == [1, 2] and row["t"].counts == [1, 1] and row["t"].nonfinite == 1


def test_table_with_typed_columns_images_and_dataframe(store_dir):
    import pandas as pd

    run = runstack.init()
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    run.log({"preds": runstack.Table(columns=["id", "label", "ok", "img"],
                                     data=[[1, "cat", True, runstack.Image(pixels)], [2, "dog", False, None]])})  # fmt: skip
    run.log({"df": runstack.Table(dataframe=pd.DataFrame({"a": [1.5, np.nan], "b": ["x", "y"]}))})
    frame = _read(store_dir, run)
    table = frame["preds"][0]
    assert table.columns == ["id", "label", "ok", "img"] and table.types == ["number", "string", "bool", "image"]
    assert table.data[0][:3] == [1, "cat", True] and np.array_equal(table.data[0][3].to_numpy(), pixels)
    assert frame["df"][1].to_pandas()["b"].tolist() == ["x", "y"] and frame["df"][1].data[1][0] is None


def test_audio_text_and_html(store_dir):
    run = runstack.init()
    wave = np.sin(np.linspace(0, 20, 800)).astype(np.float32) * 0.5
    run.log({"a": runstack.Audio(wave, sample_rate=8000, caption="tone"), "t": runstack.Text("hello"),
             "h": runstack.Html("<b>hi</b>")})  # fmt: skip
    row = _read(store_dir, run).iloc[0]
    samples = row["a"].to_numpy()
    assert row["a"].sample_rate == 8000 and samples.shape == (800, 1)
    assert np.allclose(samples[:, 0] / 32767, wave, atol=1e-4)
    assert row["t"].text == "hello" and row["h"].html == "<b>hi</b>" and row["h"].path.suffix == ""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: runstack.Image(np.full((3, 3), np.nan)), "'samples' = .*NaN or infinite"),
        (lambda: runstack.Image(np.zeros((2, 2, 5))), "'samples' = .*shape \\(2, 2, 5\\) is not HxW or HxWxC"),
        (lambda: runstack.Image(np.full((2, 2), 300.0)), "'samples' = .*float values span \\[300, 300\\]"),
        (lambda: runstack.Image(np.array([["a"]])), "'samples' = .*dtype <U1 is not a number type"),
        (lambda: runstack.Image(np.zeros((0, 3))), "'samples' = .*the array is empty"),
        (lambda: runstack.Table(columns=["a"], data=[]), "'samples' = .*the table is empty"),
        (
            lambda: runstack.Table(columns=["a", "b"], data=[[1, 2], [3]]),
            "'samples' = .*row 1 has 1 values, expected 2",
        ),
        (lambda: runstack.Table(columns=["a"], data=[[1], ["x"]]), "'samples' = .*column 'a' mixes"),
        (lambda: runstack.Audio(np.ones(10) * 2, sample_rate=8000), "'samples' = .*within \\[-1, 1\\]"),
        (lambda: runstack.Audio(np.ones(10) * 0.1, sample_rate=0), "'samples' = .*sample_rate must be a positive"),
        (lambda: runstack.Histogram([np.nan]), "'samples' = .*no finite values"),
        (
            lambda: runstack.Histogram(np_histogram=([1, 2], [0, 1])),
            "'samples' = .*3 bin edges|2 bin edges for 2 counts",
        ),
    ],
)
def test_bad_media_names_the_key_and_keeps_earlier_steps(store_dir, make, message):
    run = runstack.init()
    run.log({"loss": 1.0})
    with pytest.raises(InvalidMetricError, match=message):
        run.log({"samples": make(), "loss": 2.0})
    run.log({"loss": 3.0})
    assert _read(store_dir, run)["loss"].tolist() == [1.0, 3.0]


def test_media_only_in_history_not_summary(store_dir):
    run = runstack.init()
    run.log({"img": runstack.Image(np.zeros((2, 2))), "x": 1})
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert view.summary == {"x": 1} and view.metrics() == {"img": 1, "x": 1}
    table = view.history(format="arrow")
    assert '"_type": "image"' in table.column("img")[0].as_py()
