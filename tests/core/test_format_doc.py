"""docs/FORMAT.md documents every record kind the code writes, with the code's numbers."""

from __future__ import annotations

import re

from runstack.core import logfile

from ..conftest import ROOT


def test_every_record_kind_is_documented_with_its_number():
    text = (ROOT / "docs" / "FORMAT.md").read_text()
    documented = {int(n): name for n, name in re.findall(r"^- \*\*(\d+) (\w+)\*\*", text, re.M)}
    in_code = {value: name.removeprefix("KIND_").lower() for name, value in vars(logfile).items()
               if name.startswith("KIND_")}  # fmt: skip
    assert documented == in_code
    assert f"version ({logfile.FORMAT_VERSION})" in text and logfile.MAGIC.decode().rstrip("\0") in text
    for part in ("catalog.lock", "system.<rank>.rsl", "media/", "artifacts/blobs/"):
        assert part in text, part
