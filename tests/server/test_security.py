"""Keys, roles and hostile input against a real server: 401, 403, 404 across projects, 413,
no SQL injection through filters or sort, no path out of the storage folder."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

import runstack
from runstack.errors import AuthError, RunNotFoundError
from tests.httpcall import call

JOB = str(Path(__file__).parent / "client_job.py")
pytestmark = pytest.mark.slow


@pytest.fixture
def two_projects(server, make_key, client_env, tmp_path):
    """A server with run-a in project alpha and run-b (with an image) in project beta."""
    srv = server("--max-body", "200000")
    writer_a, writer_b = make_key({"alpha": "write"}), make_key({"beta": "write"})
    for key, project, run_id in ((writer_a, "alpha", "run-a"), (writer_b, "beta", "run-b")):
        result = subprocess.run([sys.executable, JOB, project, run_id, "50", "--image"],
                                env=client_env(srv.url, key, tmp_path / project), capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    return srv, writer_a, writer_b


def test_no_key_is_401_for_every_read_and_write(two_projects):
    srv, _, _ = two_projects
    for path in ("/api/v1/runs", "/api/v1/runs/run-a", "/api/v1/runs/run-a/files", "/api/runs", "/api/projects",
                 "/api/runs/run-a/history?key=m0"):  # fmt: skip
        assert call(srv.url + path)[0] == 401, path
    assert call(srv.url + "/api/v1/runs/run-a", "PUT", body=b"{}")[0] == 401
    assert call(srv.url + "/api/v1/runs/run-a/files/history.0.rsl?offset=0", "POST", body=b"x")[0] == 401
    assert call(srv.url + "/api/v1/runs", key="rsk_000000000000_forged")[0] == 401
    page = call(srv.url + "/projects/alpha")  # a page sends a browser to sign in
    assert page[0] == 200 and b"Paste an API key" in page[1]


def test_a_read_key_cannot_write(two_projects, make_key):
    srv, _, _ = two_projects
    reader = make_key({"alpha": "read"})
    assert call(srv.url + "/api/v1/runs/run-a", key=reader)[0] == 200
    row = json.loads(call(srv.url + "/api/v1/runs/run-a", key=reader)[1])
    row["name"] = "renamed"
    status, body = call(srv.url + "/api/v1/runs/run-a", "PUT", key=reader, body=json.dumps(row).encode())
    assert status == 403 and b"may not write project 'alpha'" in body
    assert call(srv.url + "/api/v1/runs/run-a/files/history.0.rsl?offset=0", "POST", key=reader, body=b"x")[0] == 403
    assert json.loads(call(srv.url + "/api/v1/runs/run-a", key=reader)[1])["name"] == "run-a-name"  # unchanged


def test_a_key_for_one_project_cannot_read_another(two_projects, make_key):
    srv, writer_a, writer_b = two_projects
    api = runstack.Api(base_url=srv.url, api_key=writer_a)
    assert [r.id for r in api.runs()] == ["run-a"]
    assert api.projects() == ["alpha"]
    with pytest.raises(RunNotFoundError):
        api.run("run-b")
    assert call(srv.url + "/api/runs/run-b", key=writer_a)[0] == 404
    assert call(srv.url + "/api/v1/runs/run-b/files/history.0.rsl", key=writer_a)[0] == 404
    assert [p["name"] for p in json.loads(call(srv.url + "/api/projects", key=writer_a)[1])] == ["alpha"]
    image = runstack.Api(base_url=srv.url, api_key=writer_b).run("run-b").history(keys=["sample"])["sample"].dropna()
    digest = image.iloc[0].sha256
    assert call(srv.url + f"/api/v1/blobs/{digest}", key=writer_b)[0] == 200
    assert call(srv.url + f"/api/v1/blobs/{digest}", key=writer_a)[0] == 404
    assert call(srv.url + f"/api/media/{digest}?kind=image", key=writer_a)[0] == 404
    # Writing into another project's run, or moving a run to another project, is refused.
    row = json.loads(call(srv.url + "/api/v1/runs/run-b", key=writer_b)[1])
    assert call(srv.url + "/api/v1/runs/run-b", "PUT", key=writer_a, body=json.dumps(row).encode())[0] == 403
    moved = {**row, "project": "alpha"}
    assert call(srv.url + "/api/v1/runs/run-b", "PUT", key=writer_a, body=json.dumps(moved).encode())[0] == 403
    assert call(srv.url + "/api/v1/runs/run-b", "PUT", key=writer_b, body=json.dumps(moved).encode())[0] == 403
    both = make_key({"alpha": "write", "beta": "write"})
    status, body = call(srv.url + "/api/v1/runs/run-b", "PUT", key=both, body=json.dumps(moved).encode())
    assert status == 400 and b"the project run 'run-b' has" in body  # a run never changes project


def test_a_revoked_key_stops_at_once(two_projects, make_key):
    srv, writer_a, _ = two_projects
    key_id = writer_a.split("_")[1]
    assert call(srv.url + "/api/v1/runs", key=writer_a)[0] == 200
    assert make_key.db.revoke_key(key_id)
    status, body = call(srv.url + "/api/v1/runs", key=writer_a)
    assert status == 401 and b"revoked" in body
    with pytest.raises(AuthError):
        runstack.Api(base_url=srv.url, api_key=writer_a).runs()


HOSTILE = ["x' OR '1'='1", "alpha'; DROP TABLE runs; --", "\" OR 1=1 --", "alpha%' --", "$1", "alpha\\",
           "'); DELETE FROM api_keys; --"]  # fmt: skip


def test_filters_and_sort_cannot_inject_sql(two_projects, make_key):
    srv, writer_a, _ = two_projects
    admin = make_key({"*": "read"})
    for text in HOSTILE:
        quoted = urllib.parse.quote(text)
        assert call(srv.url + f"/api/runs?project={quoted}", key=admin) == (200, b"[]")
        assert json.loads(call(srv.url + f"/api/v1/runs?project={quoted}", key=admin)[1]) == []
        filters = urllib.parse.quote(json.dumps({f"config.{text}": text, "name": {"$regex": "run"}}))
        status, body = call(srv.url + f"/api/runs?filters={filters}", key=admin)
        assert status == 200 and json.loads(body) == []
        status, body = call(srv.url + f"/api/runs?order={quoted}", key=admin)  # not a field: refused, by name
        assert status == 400 and text.encode() in json.loads(body)["error"].encode()
        assert call(srv.url + f"/api/v1/runs/{quoted}", key=admin)[0] in (400, 404)
        assert call(srv.url + f"/api/runs/{quoted}/history?key={quoted}", key=admin)[0] in (400, 404)
    assert call(srv.url + "/api/runs?filters=" + urllib.parse.quote('{"x": {"$where": "1"}}'), key=admin)[0] == 400
    with psycopg.connect(make_key.db.dsn) as conn:  # every table and row is still there
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0] == 3
    assert len(runstack.Api(base_url=srv.url, api_key=writer_a).run("run-a").history()) == 51


def test_oversized_payloads_get_413(two_projects):
    srv, writer_a, _ = two_projects
    big = b"\0" * 300_000  # the server runs with --max-body 200000
    status, body = call(srv.url + "/api/v1/runs/run-a/files/history.0.rsl?offset=0", "POST", key=writer_a, body=big)
    assert status == 413 and b"over the limit" in body
    assert call(srv.url + "/api/v1/runs/run-a/blobs/" + "a" * 64, "PUT", key=writer_a, body=big)[0] == 413
    assert len(runstack.Api(base_url=srv.url, api_key=writer_a).run("run-a").history()) == 51  # nothing damaged


def test_blob_and_file_paths_cannot_leave_the_storage_folder(two_projects, tmp_path):
    srv, writer_a, _ = two_projects
    for name in ("..%2F..%2Foutside", "%2Fetc%2Fpasswd", "." * 64, "A" * 64, "history.0.rsl%2F..%2F..%2Fx"):
        assert call(srv.url + f"/api/v1/runs/run-a/blobs/{name}", "PUT", key=writer_a, body=b"data")[0] in (400, 404)
        assert call(srv.url + f"/api/v1/blobs/{name}", key=writer_a)[0] in (400, 404)
        assert call(srv.url + f"/api/v1/runs/run-a/files/{name}?offset=0", "POST", key=writer_a, body=b"x")[0] in (
            400,
            404,
        )
    # A body that is not what its digest says is refused (and not referenced).
    assert call(srv.url + "/api/v1/runs/run-a/blobs/" + "0" * 64, "PUT", key=writer_a, body=b"data")[0] == 400
    assert call(srv.url + "/api/v1/blobs/" + "0" * 64, key=writer_a)[0] == 404
    outside = [p for p in tmp_path.rglob("*") if "outside" in p.name or p.name == "x"]
    assert outside == []


def test_no_auth_reads_on_loopback_only_and_never_writes(server, make_key, tmp_path):
    srv = server("--no-auth")
    assert call(srv.url + "/api/v1/runs") == (200, b"[]")
    assert call(srv.url + "/api/v1/runs/r1", "PUT", body=b"{}")[0] == 401
    refused = subprocess.run([sys.executable, "-m", "runstack.cli.main", "server", "--db", make_key.db.dsn,
                              "--storage", str(tmp_path / "s"), "--host", "0.0.0.0", "--no-auth"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1 and "--no-auth" in refused.stdout and "loopback" in refused.stdout


def test_sign_in_sets_a_cookie_that_reads_but_cannot_write(two_projects):
    srv, writer_a, _ = two_projects
    form = urllib.parse.urlencode({"key": writer_a, "next": "https://evil.example/"}).encode()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    response = opener.open(urllib.request.Request(srv.url + "/login", data=form, method="POST"), timeout=30)
    assert response.url == srv.url + "/"  # an outside next= is not followed
    assert json.loads(opener.open(srv.url + "/api/runs", timeout=30).read())[0]["id"] == "run-a"
    cookie = writer_a
    assert call(srv.url + "/api/v1/runs/run-a/files/history.0.rsl?offset=0", "POST", cookie=cookie, body=b"x")[0] == 401
    bad = urllib.parse.urlencode({"key": "rsk_1_2", "next": "/"}).encode()
    assert call(srv.url + "/login", "POST", body=bad)[0] == 401


def test_only_an_admin_deletes_a_run(two_projects, make_key):
    srv, writer_a, _ = two_projects
    admin_b = make_key({"beta": "admin"})
    status, body = call(srv.url + "/api/v1/runs/run-a", "DELETE", key=writer_a)
    assert status == 403 and b"may not delete runs of project 'alpha'" in body
    assert call(srv.url + "/api/v1/runs/run-a", "DELETE", key=admin_b)[0] == 403  # admin of another project
    admin_a = make_key({"alpha": "admin"})
    assert call(srv.url + "/api/v1/runs/run-a", "DELETE", key=admin_a) == (200, b'{"deleted":"run-a"}')
    assert call(srv.url + "/api/v1/runs/run-a", key=admin_a)[0] == 404
    assert call(srv.url + "/api/v1/runs/run-a/files/history.0.rsl", key=admin_a)[0] == 404
    with psycopg.connect(make_key.db.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM log_chunks WHERE run_id = 'run-a'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # run-b untouched
