"""The Markdown tables the pack's text outputs hold (Density Readout's and Perceptual Metrics' tables), read
back by the tests."""

from __future__ import annotations


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every table in ``text``, each a list of rows, each row its cells by the header's names."""
    tables, lines = [], [line.strip() for line in text.splitlines()] + [""]
    block: list[list[str]] = []
    for line in lines:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if block:
            header, rows = block[0], block[2:]  # the second line is the alignment rule
            tables.append([dict(zip(header, row, strict=True)) for row in rows])
        block = []
    return tables
