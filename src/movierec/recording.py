"""One sink for what a stage records: metrics, tables for plots, files.

Every report the pipeline writes goes through a :class:`Recorder`: the JSON reports DVC
reads as metrics (``reports/<name>.json``), the CSV tables DVC plots
(``reports/plots/<name>.csv``) and figures. A recorder also hands each record to its
backends (tracking servers such as MLflow or a Prometheus Pushgateway), so adding one
is a matter of passing it here, not of finding every place a report is written.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from movierec.errors import DataError
from movierec.io import atomic_file, read_json, write_json


class Backend(Protocol):
    """Somewhere records are also sent (a tracking server); every method may be a no-op."""

    def log_metrics(self, name: str, values: dict[str, float]) -> None: ...

    def log_artifact(self, path: Path) -> None: ...


def numbers(report: Any, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested report, keyed by their dotted path (booleans left out)."""
    out: dict[str, float] = {}
    if isinstance(report, dict):
        for key, value in report.items():
            out |= numbers(value, f"{prefix}{key}.")
    elif isinstance(report, (int, float)) and not isinstance(report, bool) and report == report:
        out[prefix.rstrip(".")] = float(report)
    return out


@dataclass
class Recorder:
    """Writes a stage's records under ``reports`` (tables and figures under ``plots``) and
    forwards them to ``backends``."""

    reports: Path
    plots: Path | None = None
    backends: list[Backend] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reports = Path(self.reports)
        self.plots = Path(self.plots) if self.plots is not None else self.reports / "plots"

    def metrics(self, name: str, report: dict[str, Any]) -> Path:
        """Write ``reports/<name>.json`` (atomically) and send its numbers to the backends."""
        path = self.reports / f"{name}.json"
        write_json(path, report)
        for backend in self.backends:
            backend.log_metrics(name, numbers(report))
            backend.log_artifact(path)
        return path

    def read(self, name: str) -> dict[str, Any]:
        """A report recorded earlier as ``name`` (``reports/<name>.json``).

        Raises:
            DataError: it has not been recorded yet.
        """
        path = self.reports / f"{name}.json"
        if not path.exists():
            raise DataError(f"no {name} report yet; run the stage that records it first", path=path)
        return read_json(path)

    def table(self, name: str, rows: Iterable[dict[str, Any]], fields: list[str] | None = None) -> Path:
        """Write ``plots/<name>.csv`` (one column per key, in order of first appearance)."""
        rows = list(rows)
        keys = fields or list(dict.fromkeys(k for r in rows for k in r))
        assert self.plots is not None
        path = self.plots / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        for backend in self.backends:
            backend.log_artifact(path)
        return path

    def figure(self, name: str, write: Callable[[BinaryIO], None]) -> Path:
        """Write ``plots/<name>`` with ``write(handle)`` (e.g. a PNG)."""
        assert self.plots is not None
        path = self.plots / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb") as handle:
            write(handle)
        for backend in self.backends:
            backend.log_artifact(path)
        return path
