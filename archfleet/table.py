"""The one table printer: columns padded to their widest cell, two spaces apart, no trailing blanks."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headings: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [tuple(str(h) for h in headings)] + [tuple(str(value) for value in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    return "\n".join("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in cells)
