"""Retrieval from a built release, as The Stack v2 offers it: by language, licence, licence type,
repository or a regular expression over the code, with DuckDB reading the Parquet shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runstack.datasets_hub.publish import read_manifest
from runstack.datasets_hub.record import COLUMNS
from runstack.errors import InvalidArgumentError, MissingDependencyError

DEFAULT_COLUMNS = ("repo_name", "path", "language", "license_type", "detected_licenses", "length_bytes", "blob_id",
                   "content")  # fmt: skip


def query(dataset: str | Path, language: str | None = None, license: str | None = None,
          license_type: str | None = None, repo: str | None = None, grep: str | None = None,
          limit: int | None = 100, columns: tuple[str, ...] = DEFAULT_COLUMNS, format: str = "arrow") -> Any:  # fmt: skip
    """Rows of a release matching every given condition.

    Args:
        dataset: a folder written by ``runstack data build``.
        language: e.g. "Python" (case-insensitive).
        license: an SPDX id among ``detected_licenses``, e.g. "MIT".
        license_type: "permissive", "non_permissive" or "no_license".
        repo: "owner/name", or an owner ("owner" or "owner/*").
        grep: a regular expression searched in ``content`` (RE2 syntax, as DuckDB's ``regexp_matches``).
        limit: at most this many rows (None: all).
        columns: the columns to return.
        format: "arrow" (a pyarrow Table) or "datasets" (a ``datasets.Dataset``).

    Raises:
        InvalidArgumentError: a bad value (named), e.g. an invalid regular expression.
        MissingDependencyError: duckdb (or datasets for format="datasets") is not installed.
    """
    try:
        import duckdb
    except ImportError as exc:
        raise MissingDependencyError("duckdb", "datasets") from exc
    manifest = read_manifest(dataset)
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise InvalidArgumentError("columns", sorted(unknown), f"columns of the release: {', '.join(COLUMNS)}")
    if format not in ("arrow", "datasets"):
        raise InvalidArgumentError("format", format, "'arrow' or 'datasets'")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidArgumentError("limit", limit, "a non-negative int, or None for every row")
    shards = [str(Path(dataset) / shard["path"]) for shard in manifest["shards"]]
    where, params = [], []
    if language:
        where.append("lower(language) = lower(?)")
        params.append(language)
    if license:
        where.append("list_contains(detected_licenses, ?)")
        params.append(license)
    if license_type:
        where.append("license_type = ?")
        params.append(license_type)
    if repo:
        owner, _, name = repo.partition("/")
        if name and name != "*":
            where.append("repo_name = ?")
            params.append(repo)
        else:
            where.append("split_part(repo_name, '/', 1) = ?")
            params.append(owner)
    if grep:
        where.append("regexp_matches(content, ?)")
        params.append(grep)
    select = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {select} FROM read_parquet(?) " + (f"WHERE {' AND '.join(where)} " if where else "")
    sql += "ORDER BY repo_name, path" + (f" LIMIT {int(limit)}" if limit is not None else "")
    with duckdb.connect() as con:
        try:
            relation = con.sql(sql, params=[shards, *params])
            table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except duckdb.Error as exc:
            raise InvalidArgumentError(
                "grep" if grep else "query", grep, f"a valid regular expression ({exc})"
            ) from exc
    if format == "datasets":
        try:
            import datasets
        except ImportError as exc:
            raise MissingDependencyError("datasets", "datasets") from exc
        return datasets.Dataset(table)
    return table
