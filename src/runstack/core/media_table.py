"""Table, Text and Html media for ``run.log`` (see ``runstack.core.media``)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from runstack.core.media import Media, _bad, _deferred, decode

if TYPE_CHECKING:
    from runstack.core.blobs import BlobStore


def _cell_type(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Media):
        return value.kind
    return "other"


class Table(Media):
    """Rows under named, typed columns; from ``columns`` + ``data`` or a pandas DataFrame.

    Cells may be numbers, bools, strings, None or media (e.g. Images). Each column has one
    type (plus nulls).
    """

    kind = "table"

    @_deferred
    def __init__(self, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                 dataframe: Any = None) -> None:  # fmt: skip
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.astype(object).where(dataframe.notna(), None).values.tolist()
        if not columns:
            raise _bad("table", columns, "a table needs column names: Table(columns=[...], data=[[...], ...])")
        if len(set(columns)) != len(columns):
            raise _bad("table", columns, "column names must be unique")
        if not data:
            raise _bad("table", data, "the table is empty: add at least one row")
        rows = []
        for i, row in enumerate(data):
            if len(row) != len(columns):
                raise _bad("table", row, f"row {i} has {len(row)} values, expected {len(columns)} (columns {columns})")
            rows.append([v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v for v in row])
        types = []
        for j, name in enumerate(columns):
            kinds = {_cell_type(row[j]) for row in rows} - {"null"}
            if "other" in kinds or len(kinds) > 1:
                raise _bad(
                    "table",
                    [row[j] for row in rows][:5],
                    f"column {name!r} mixes {sorted(kinds)}: use one type per column",
                )
            types.append(kinds.pop() if kinds else "null")
        self.columns, self.types, self.data = list(columns), types, rows

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        cells = [[v.encode(blobs) if isinstance(v, Media) else v for v in row] for row in self.data]
        body = json.dumps({"columns": self.columns, "types": self.types, "rows": cells}, sort_keys=True).encode()
        digest, _, _ = blobs.put_bytes(body)
        return {"_type": self.kind, "sha256": digest, "nrows": len(self.data), "columns": self.columns}

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Table:
        body = json.loads(blobs.path(ref["sha256"]).read_bytes())
        rows = [[decode(v, blobs) if isinstance(v, dict) and "_type" in v else v for v in row] for row in body["rows"]]
        table = cls(body["columns"], rows)
        table._path = blobs.path(ref["sha256"])
        return table

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.data, columns=self.columns)

    def _identity(self) -> Any:
        return (self.columns, self.types, [[repr(v) if isinstance(v, Media) else v for v in r] for r in self.data])

    def __repr__(self) -> str:
        return f"Table({len(self.data)} rows x {self.columns})"


class Text(Media):
    """A piece of text, kept inline in the history."""

    kind = "text"

    @_deferred
    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise _bad("text", text, f"{type(text).__name__} is not a str")
        self.text = text

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        return {"_type": self.kind, "text": self.text}

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Text:
        return cls(ref["text"])

    def __repr__(self) -> str:
        return f"Text({self.text[:40]!r})"


class Html(Media):
    """An HTML document or fragment, stored as a file."""

    kind = "html"

    @_deferred
    def __init__(self, html: str) -> None:
        if not isinstance(html, str):
            raise _bad("html", html, f"{type(html).__name__} is not a str of HTML")
        self.html = html

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        digest, _, _ = blobs.put_bytes(self.html.encode())
        return {"_type": self.kind, "sha256": digest}

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Html:
        path = blobs.path(ref["sha256"])
        html = cls(path.read_text(encoding="utf-8"))
        html._path = path
        return html

    def __repr__(self) -> str:
        return f"Html({len(self.html)} chars)"
