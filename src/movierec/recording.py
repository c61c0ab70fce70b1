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

    def log_metrics(self, name: str, values: dict[str, float]) -> None:
        """The numeric leaves of report ``name``, keyed by dotted path."""

    def log_table(self, name: str, path: Path) -> None:
        """A table written to ``path`` (CSV); rows with an ``epoch`` or ``trial`` column are steps."""

    def log_artifact(self, path: Path) -> None:
        """A file written by the recorder (a report, a figure)."""


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
            backend.log_table(name, path)
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

    def timing(self, stage: str, seconds: float) -> Path:
        """Record a stage's wall time as ``timings/<stage>.json`` beside the reports (a run log:
        neither in git nor a DVC output), read back by :meth:`timings`."""
        import time

        path = self.reports / "timings" / f"{stage}.json"
        write_json(path, {"stage": stage, "seconds": round(float(seconds), 3), "finished_at": round(time.time(), 3)})
        return path

    def timings(self) -> dict[str, float]:
        """The last recorded wall time of each stage, in seconds."""
        folder = self.reports / "timings"
        found = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return {path.stem: float(read_json(path)["seconds"]) for path in found}

    def replay(self, backend: Backend, skip: tuple[str, ...] = ()) -> None:
        """Send everything recorded so far to ``backend``: every report (but those named in
        ``skip``), table and figure (for a backend that joins after the stages ran, such as the
        register stage's MLflow run)."""
        for path in sorted(self.reports.glob("*.json")):
            if path.stem in skip:
                continue
            backend.log_metrics(path.stem, numbers(read_json(path)))
            backend.log_artifact(path)
        assert self.plots is not None
        for path in sorted(self.plots.glob("*")) if self.plots.is_dir() else []:
            if path.suffix == ".csv":
                backend.log_table(path.stem, path)
            elif path.is_file():
                backend.log_artifact(path)
