"""Done when: two users on two processes log to one server, see each other's runs in the
dashboard (real Chromium), and a server restart in the middle loses nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import runstack
from tests.browser import open_page
from tests.server.test_sync import assert_exactly_once

JOB = str(Path(__file__).parent / "client_job.py")
STEPS = 15_000
pytestmark = pytest.mark.slow


def test_two_users_one_server_restarted_in_the_middle(server, make_key, client_env, tmp_path, page):
    srv = server()
    alice, bob = make_key({"team": "write"}, "alice"), make_key({"team": "write"}, "bob")
    viewer = make_key({"team": "read"}, "carol")
    procs = []
    for user, key in (("alice", alice), ("bob", bob)):
        env = client_env(srv.url, key, tmp_path / user, RUNSTACK_SYNC_TIMEOUT="120")
        procs.append(subprocess.Popen([sys.executable, JOB, "team", f"{user}-run", str(STEPS), "0.0003", "--image"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    as_alice = runstack.Api(base_url=srv.url, api_key=alice)
    deadline = time.time() + 60
    while len(as_alice.runs(project="team")) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert {r.id for r in as_alice.runs(project="team")} == {"alice-run", "bob-run"}  # alice sees bob's run
    assert all(p.poll() is None for p in procs)
    srv.kill()
    time.sleep(1.0)
    srv = server(port=srv.port)
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    for run_id in ("alice-run", "bob-run"):
        assert_exactly_once(runstack.Api(base_url=srv.url, api_key=bob).run(run_id), STEPS)

    failed = []
    page.on("response", lambda r: r.status >= 400 and failed.append(r.url))
    page.goto(srv.url + "/projects/team")
    assert "/login" in page.url  # no key yet: the page asks for one
    page.fill("input[name=key]", viewer)
    page.click("button[type=submit]")
    page.wait_for_url(srv.url + "/projects/team")
    open_page(page, page.url)
    rows = page.locator("#runs tbody tr[data-run]")
    rows.first.wait_for()
    assert {rows.nth(i).get_attribute("data-run") for i in range(rows.count())} == {"alice-run", "bob-run"}
    assert page.inner_text("#runs").count("finished") == 2
    open_page(page, srv.url + "/runs/bob-run")
    assert "finished" in page.inner_text("#facts")
    assert {f"m{i}" for i in range(10)} <= set(page.evaluate("Object.keys(window.__charts)"))
    page.wait_for_function("document.querySelector('#media [data-key=sample] img')?.naturalWidth === 32")
    assert page.console_errors == [], failed
