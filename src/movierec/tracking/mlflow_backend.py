"""A :class:`movierec.recording.Recorder` backend that writes into one MLflow run."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

STEP_COLUMNS = ("epoch", "trial", "k")  # the first one a table has is its step axis
LABEL_COLUMNS = ("model", "system")  # text columns that name a series (other text columns are left out)
_BATCH = 1000  # MLflow takes at most 1000 metrics per call
_NOT_ALLOWED = re.compile(r"[^\w\-. /]")


def metric_key(name: str) -> str:
    """``name`` in the characters MLflow accepts in a key (``ndcg@10`` -> ``ndcg_at_10``)."""
    return _NOT_ALLOWED.sub("_", name.replace("@", "_at_"))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


class MlflowBackend:
    """Sends reports' numbers as metrics, tables with a step column (epoch, trial, k) as metric
    histories, and every file as an artifact (reports under ``reports/``, plots under ``plots/``)."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def _log(self, metrics: list[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        entries = [Metric(metric_key(key), value, stamp, step) for key, value, step in metrics]
        for start in range(0, len(entries), _BATCH):
            self.client.log_batch(self.run_id, metrics=entries[start : start + _BATCH])

    def log_metrics(self, name: str, values: dict[str, float]) -> None:
        """Each value as metric ``<name>.<dotted key>`` at step 0."""
        self._log([(f"{name}.{key}", value, 0) for key, value in values.items()])

    def log_table(self, name: str, path: Path) -> None:
        """Numeric columns as ``<name>.<labels>.<column>`` per row, stepped by the step column;
        the label columns (model, system) become part of the key. The CSV is kept as an artifact."""
        with Path(path).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = list(rows[0]) if rows else []
        step_column = next((c for c in STEP_COLUMNS if c in columns), None)
        if step_column is not None:
            metrics = []
            for row in rows:
                step = _number(row[step_column])
                if step is None:
                    continue
                labels = [row[c] for c in LABEL_COLUMNS if row.get(c)]
                for column, text in row.items():
                    value = _number(text)
                    if column != step_column and value is not None:
                        metrics.append((".".join([name, *labels, column]), value, int(step)))
            self._log(metrics)
        self.log_artifact(path)

    def log_artifact(self, path: Path) -> None:
        """The file under ``plots/`` or ``reports/`` in the run's artifacts."""
        path = Path(path)
        self.client.log_artifact(self.run_id, str(path), "plots" if path.parent.name == "plots" else "reports")
