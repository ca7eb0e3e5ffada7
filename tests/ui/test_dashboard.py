"""The dashboard in a real headless Chromium: pages, filters, charts, media, live runs, a
million-point chart, and what a hostile name or Html media must not be able to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import runstack
from tests.httpcall import call

from ..conftest import ROOT
from .conftest import open_page

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def runs(store_dir):
    """Two finished runs with metrics and every media kind, and one with hostile text everywhere."""
    made = {}
    for i, lr in enumerate((0.1, 0.01)):
        run = runstack.init(project="vision", name=f"run-{i}", config={"lr": lr, "model": {"width": 8 * (i + 1)}},
                            tags=["baseline"] if i == 0 else ["tuned"], system_metrics=False)  # fmt: skip
        run.define_metric("val/*", step_metric="epoch")
        for step in range(50):
            run.log({"train/loss": 1.0 / (step + 1 + i), "train/acc": step / 50})
            if step % 10 == 9:
                run.log({"val/loss": 2.0 / (step + 1), "epoch": step // 10}, commit=False)
        pixels = np.zeros((16, 16, 3), np.uint8)
        pixels[:, :8] = 255
        run.log({"samples": runstack.Image(pixels, caption="half white"), "weights": runstack.Histogram(np.arange(100)),
                 "preds": runstack.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]]), "note": runstack.Text("hello"),
                 "sound": runstack.Audio(np.zeros(800, np.float32), sample_rate=8000),
                 "report": runstack.Html("<body><script>try{parent.document.title='pwned'}catch(e){}"
                                         "document.body.textContent='sandboxed'</script></body>")})  # fmt: skip
        if i == 0:
            path = store_dir.parent / "data.txt"
            path.write_text("rows")
            artifact = runstack.Artifact("data", "dataset")
            artifact.add_file(path)
            run.log_artifact(artifact)
        else:
            run.use_artifact("data:latest")
        run.finish()
        made[f"run{i}"] = run.id
    evil = runstack.init(project="vision", name=XSS, tags=[XSS], config={XSS: XSS}, system_metrics=False)
    evil.log({XSS.replace("<", "").replace(">", ""): 1.0})
    evil.summary["note"] = XSS
    evil.finish()
    made["evil"] = evil.id
    return made


def test_every_page_loads_without_console_errors(serve, page, store_dir, runs):
    url = serve(store_dir)
    for path in ("/", "/projects/vision", f"/runs/{runs['run0']}", f"/compare?runs={runs['run0']},{runs['run1']}"):
        open_page(page, url + path)
        assert page.console_errors == [], (path, page.console_errors)
    status, body = call(url + "/api/openapi.json")
    assert status == 200 and "/api/runs/{run_id}/history" in json.loads(body)["paths"]


def test_runs_table_filters_sorts_groups_and_selects_for_compare(serve, page, store_dir, runs):
    open_page(page, serve(store_dir) + "/projects/vision")
    rows = page.locator("#runs tbody tr[data-run]")
    assert rows.count() == 3
    shown = "[...document.querySelectorAll('#runs tbody tr[data-run]')].map(r => r.dataset.run).join(',')"
    page.fill("#filter", "config.lr<0.05")
    page.press("#filter", "Enter")
    page.wait_for_function(f"{shown} === '{runs['run1']}'")
    page.fill("#filter", "tags=baseline")
    page.press("#filter", "Enter")
    page.wait_for_function(f"{shown} === '{runs['run0']}'")
    page.fill("#filter", "")
    page.press("#filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr[data-run]').length === 3")
    page.click("#runs th:has-text('name')")  # sort by name, ascending
    page.wait_for_function("document.querySelector('#runs th:nth-child(2)').textContent.includes('▲')")
    names = page.locator("#runs tbody tr[data-run] td:nth-child(2)").all_inner_texts()
    assert names == sorted(names)
    page.click("#columns summary")
    page.locator("label.column-option:has-text('config.lr') input").check()
    page.wait_for_function("[...document.querySelectorAll('#runs th')].some(th => th.textContent === 'config.lr')")
    assert set(page.locator("#runs tbody tr[data-run] td:last-child").all_inner_texts()) >= {"0.1", "0.01"}
    page.select_option("#group", "config.lr")
    assert page.locator("#runs tr.group").count() == 3
    for run_id in (runs["run0"], runs["run1"]):
        page.locator(f"tr[data-run='{run_id}'] input[type=checkbox]").check()
    page.click("#compare")
    page.wait_for_url("**/compare?runs=*")
    page.wait_for_function("document.body.dataset.ready === '1'")
    chart = page.evaluate("window.__charts['train/loss'].series.length")
    assert chart == 3  # the x series and one per selected run
    assert page.console_errors == []


def test_compare_x_axis_smoothing_and_log_scale(serve, page, store_dir, runs):
    open_page(page, serve(store_dir) + f"/compare?runs={runs['run0']},{runs['run1']}")
    page.select_option("#xaxis", "epoch")
    page.wait_for_function("window.__charts['val/loss'] && window.__charts['val/loss'].data[0].length === 5")
    assert page.evaluate("window.__charts['val/loss'].data[0]") == [0, 1, 2, 3, 4]
    assert "train/loss" not in page.evaluate("Object.keys(window.__charts)")  # never logged with an epoch
    page.select_option("#xaxis", "_step")
    page.check("#logscale")
    page.wait_for_function("window.__charts['train/loss'] && window.__charts['train/loss'].scales.y.distr === 3")
    colors = page.evaluate("[...document.querySelectorAll('#legend i')].map(i => i.style.background)")
    assert len(set(colors)) == 2


def test_run_page_shows_facts_charts_and_decoded_media(serve, page, store_dir, runs):
    open_page(page, serve(store_dir) + f"/runs/{runs['run0']}")
    assert "finished" in page.inner_text("#facts") and "baseline" in page.inner_text("#facts")
    assert "width: 8" in page.inner_text("#config")
    assert set(page.evaluate("Object.keys(window.__charts)")) >= {"train/loss", "train/acc", "val/loss", "epoch"}
    image = page.locator("#media [data-key=samples] img")
    image.wait_for()
    page.wait_for_function("document.querySelector('#media [data-key=samples] img').naturalWidth === 16")
    assert page.locator("#media [data-key=weights] canvas.heatmap").count() == 1
    page.locator("#media [data-key=preds] table").wait_for()
    assert page.inner_text("#media [data-key=preds] table").split() == ["x", "y", "1", "a", "2", "b"]
    assert page.inner_text("#media [data-key=note] pre") == "hello"
    assert page.locator("#media [data-key=sound] audio").count() == 1
    lineage = page.locator("#artifacts svg.lineage")
    text = lineage.text_content()
    assert lineage.count() == 1 and "data:v0" in text and runs["run1"] in text
    assert page.locator(f"#artifacts svg.lineage a[href='/runs/{runs['run1']}']").count() == 1


def test_hostile_text_renders_as_text_and_html_media_stays_in_its_sandbox(serve, page, store_dir, runs):
    url = serve(store_dir)
    open_page(page, url + "/projects/vision")
    assert XSS in page.inner_text("#runs")
    page.locator(f"tr[data-run='{runs['evil']}'] input[type=checkbox]").check()
    open_page(page, url + f"/runs/{runs['evil']}")
    assert XSS in page.inner_text("#title") and XSS in page.inner_text("#config") and XSS in page.inner_text("#summary")
    open_page(page, url + f"/runs/{runs['run0']}")
    frame = page.frame_locator("#media [data-key=report] iframe")
    frame.locator("body").wait_for()
    time.sleep(0.5)
    assert page.title() != "pwned" and frame.locator("body").inner_text() == "sandboxed"
    assert page.dialogs == []


@pytest.mark.parametrize("path", ["/api/media/../../catalog.db", "/api/media/..%2F..%2Fcatalog.db",
                                  "/api/media/catalog.db", "/static/../catalog.db", "/api/runs/..%2F..",
                                  "/api/media/" + "a" * 64])  # fmt: skip
def test_nothing_outside_the_media_store_is_served(serve, store_dir, runs, path):
    status, body = call(serve(store_dir) + path)
    assert status == 404 and b"SQLite" not in body


def test_a_missing_store_gives_a_clear_page(serve, page, tmp_path):
    url = serve(tmp_path / "nowhere")
    page.goto(url + "/")
    assert "no store here" in page.inner_text("#missing")
    status, body = call(url + "/api/projects")
    assert status == 404 and b"Traceback" not in body and not (tmp_path / "nowhere").exists()


def test_a_live_run_grows_without_reloading(serve, page, store_dir):
    code = """
import sys, time, runstack
run = runstack.init(id="live-run", project="live", system_metrics=False)
for i in range(5):
    run.log({"loss": 1.0 / (i + 1)})
print("ready", flush=True)
sys.stdin.readline()
for i in range(5, 40):
    run.log({"loss": 1.0 / (i + 1)}); time.sleep(0.05)
run.finish()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store_dir)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdout.readline().strip() == "ready"
    open_page(page, serve(store_dir) + "/runs/live-run")
    assert page.evaluate("window.__charts['loss'].data[0].length") == 5
    child.stdin.write("go\n")
    child.stdin.flush()
    page.wait_for_function("window.__charts['loss'].data[0].length === 40", timeout=30_000)
    child.wait(timeout=60)


@pytest.mark.slow
def test_a_million_point_chart_renders_from_a_downsampled_series_with_its_spike(serve, page, store_dir):
    run = runstack.init(id="big", project="big", system_metrics=False)
    for i in range(1_000_000):
        run.log({"loss": 1.0 if i != 654_321 else 50.0})
    run.finish()
    url = serve(store_dir)
    status, body = call(url + "/api/runs/big/history?key=loss&points=2000")
    series = json.loads(body)
    assert status == 200 and series["total"] == 1_000_000 and len(series["y"]) <= 2000 and max(series["y"]) == 50.0
    zoom = json.loads(call(url + "/api/runs/big/history?key=loss&min=654000&max=654600")[1])
    assert len(zoom["y"]) == 601 and not zoom["downsampled"]  # the visible range at full resolution
    open_page(page, url + "/runs/big")
    assert page.evaluate("Math.max(...window.__charts['loss'].data[1])") == 50.0
    assert page.console_errors == []


def test_page_javascript_stays_small():
    static = ROOT / "src" / "runstack" / "ui" / "static"
    total = sum(p.stat().st_size for p in static.rglob("*.js"))
    assert total <= 300 * 1024, total
    assert (static / "vendor" / "uplot" / "LICENSE").read_text().startswith("The MIT License")


def test_runstack_ui_serves_loopback_and_stops_cleanly_on_ctrl_c(store_dir, runs):
    import signal

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "runstack", "ui", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline()
    assert line.startswith("runstack ui: http://127.0.0.1:"), line + proc.stderr.read()
    url = line.split()[2]
    assert call(url + "api/projects")[0] == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0 and "Traceback" not in proc.stderr.read()


def test_a_sweep_page_shows_parallel_coordinates_and_importances(serve, page, store_dir):
    pytest.importorskip("optuna")

    def train():
        run = runstack.init()
        run.log({"loss": (run.config["lr"] - 0.3) ** 2 + 0.01 * run.config["depth"]})
        run.finish()

    sweep_id = runstack.sweep({"method": "random", "metric": {"name": "loss"}, "parameters": {
        "lr": {"min": 0.0, "max": 1.0}, "depth": {"values": [1, 2, 3]}}}, project="sw", seed=0)  # fmt: skip
    assert runstack.agent(sweep_id, function=train, count=8) == 8
    url = serve(store_dir)
    open_page(page, url + "/")
    assert page.locator(f"#sweeps a[href='/sweeps/{sweep_id}']").count() == 1
    open_page(page, url + f"/sweeps/{sweep_id}")
    assert page.locator("#parallel svg polyline").count() == 8
    assert set(page.locator("#importance td:first-child").all_inner_texts()) == {"lr", "depth"}
    assert page.locator("#trials tr").count() == 9 and page.console_errors == []
