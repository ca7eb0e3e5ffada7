"""One HTTP request from a test, its status and body whatever the status (urllib raises on 4xx/5xx)."""

from __future__ import annotations

import urllib.error
import urllib.request


def call(url, method="GET", key=None, body=None, cookie=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if cookie:
        request.add_header("Cookie", f"runstack_key={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
