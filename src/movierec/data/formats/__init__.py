"""Readers for the MovieLens source formats, and detection of which one a directory holds."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from movierec.data.formats import csv_family, ml1m, ml100k, recbole
from movierec.data.formats._common import InteractionsSource
from movierec.errors import DataError

# Format name -> module exposing interactions_source, read_interactions, read_items,
# read_users and read_tags.
FORMATS: dict[str, ModuleType] = {
    "ml-100k": ml100k,
    "ml-1m": ml1m,
    "csv": csv_family,
    "recbole": recbole,
}

# The file whose presence identifies each format, checked in this order.
_MARKERS = [("ml-100k", ml100k.DATA), ("ml-1m", ml1m.RATINGS), ("csv", csv_family.RATINGS)]


def detect_format(directory: Path) -> str:
    """Tell which format ``directory`` holds from the files it contains.

    Args:
        directory: an unpacked dataset directory.

    Returns:
        One of ``"ml-100k"``, ``"ml-1m"`` (also ML-10M's .dat layout), ``"csv"`` or
        ``"recbole"``.

    Raises:
        DataError: the directory is missing or holds none of the marker files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("dataset directory does not exist", path=directory)
    for name, marker in _MARKERS:
        if (directory / marker).is_file():
            return name
    inter = sorted(p.name for p in directory.glob("*.inter") if p.is_file())
    if len(inter) == 1:
        return "recbole"
    looked_for = ", ".join([marker for _, marker in _MARKERS] + ["exactly one *.inter"])
    found = f" (found {len(inter)} *.inter files: {', '.join(inter)})" if inter else ""
    raise DataError(f"unknown dataset format: looked for {looked_for}{found}", path=directory)


def get_format(name: str) -> ModuleType:
    """Return the reader module of format ``name``.

    Args:
        name: a key of ``FORMATS``.

    Returns:
        The module.

    Raises:
        DataError: ``name`` is not a known format.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown format {name!r}: expected one of {', '.join(FORMATS)}") from None


__all__ = ["FORMATS", "InteractionsSource", "csv_family", "detect_format", "get_format", "ml1m", "ml100k", "recbole"]
