"""Summarising a CSV dataset chunk by chunk (pure functions)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator


def read_rows(content: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(content))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def chunks(rows: list, size: int) -> Iterator[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def summarise_chunk(rows: list[dict[str, str]], summary: dict) -> dict:
    """Fold rows into ``{column: {"count", "sum", "min", "max"}}`` for numeric cells."""
    columns = summary.setdefault("columns", {})
    summary["rows"] = summary.get("rows", 0) + len(rows)
    for row in rows:
        for column, raw in row.items():
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            stats = columns.setdefault(column, {"count": 0, "sum": 0.0, "min": value, "max": value})
            stats["count"] += 1
            stats["sum"] += value
            stats["min"] = min(stats["min"], value)
            stats["max"] = max(stats["max"], value)
    return summary
