"""Builders for the panels, variables and dashboards of Grafana's dashboard JSON (schemaVersion 41).

Every panel built here has a title, a description, a unit and a thresholds configuration,
queries the provisioned Prometheus data source, and is placed on Grafana's 24-column grid
by :class:`Grid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from movierec.grafana import DATASOURCE, SCHEMA_VERSION

GREEN, YELLOW, RED, BLUE = "green", "yellow", "red", "blue"


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel; ``legend`` is Grafana's legend format (``{{label}}``)."""

    expr: str
    legend: str = ""


def steps(base: str, *above: tuple[float, str]) -> list[tuple[float | None, str]]:
    """Threshold steps: ``base`` colour from minus infinity, then each ``(value, colour)`` from its value up."""
    values = [value for value, _ in above]
    if values != sorted(values):
        raise ValueError(f"threshold values must increase: {values}")
    return [(None, base), *above]


@dataclass
class Panel:
    """A panel before placement.

    Args:
        kind: Grafana's panel type (``timeseries`` or ``stat``).
        title: the panel's title.
        description: what it shows and what its thresholds mean (the panel's info tooltip).
        unit: a Grafana unit id (``reqps``, ``s``, ``percentunit``, ``bytes``, ...).
        queries: its PromQL targets.
        thresholds: from :func:`steps`.
        width, height: grid size (24 columns across).
        min, max, decimals: axis and display options (None: Grafana's automatic choice).
        mappings: Grafana value mappings (for example 0 -> "not met").
        text_mode: for a stat panel, ``name`` shows the series' legend instead of its value.
    """

    kind: str
    title: str
    description: str
    unit: str
    queries: list[Query]
    thresholds: list[tuple[float | None, str]]
    width: int = 8
    height: int = 8
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    text_mode: str = "auto"

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        """The panel's JSON at grid position ``(x, y)``."""
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": colour, "value": value} for value, colour in self.thresholds],
            },
            "color": {"mode": "thresholds" if self.kind == "stat" else "palette-classic"},
            "mappings": self.mappings,
        }
        for key in ("min", "max", "decimals"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                # the thresholds drawn as dashed lines (none when there is only the base colour)
                "thresholdsStyle": {"mode": "dashed" if len(self.thresholds) > 1 else "off"},
            }
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": dict(DATASOURCE),
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self._options(),
            "targets": [
                {
                    "refId": chr(ord("A") + n),
                    "datasource": dict(DATASOURCE),
                    "editorMode": "code",
                    "expr": query.expr,
                    "legendFormat": query.legend or "__auto",
                    "range": True,
                }
                for n, query in enumerate(self.queries)
            ],
        }

    def _options(self) -> dict[str, Any]:
        if self.kind == "stat":
            return {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area" if self.text_mode == "auto" else "none",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": self.text_mode,
            }
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }


def timeseries(title: str, description: str, unit: str, queries: list[Query], thresholds, **options) -> Panel:
    """A time-series panel (see :class:`Panel` for the arguments)."""
    return Panel("timeseries", title, description, unit, queries, thresholds, **options)


def stat(title: str, description: str, unit: str, queries: list[Query], thresholds, **options) -> Panel:
    """A single-value panel showing each series' last value (see :class:`Panel`)."""
    options.setdefault("width", 6)
    options.setdefault("height", 5)
    return Panel("stat", title, description, unit, queries, thresholds, **options)


class Grid:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new row when full."""

    COLUMNS = 24

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def add(self, *panels: Panel) -> Grid:
        """Place ``panels`` after those already placed."""
        for panel in panels:
            if panel.width > self.COLUMNS:
                raise ValueError(f"panel {panel.title!r} is wider than the grid")
            if self._x + panel.width > self.COLUMNS:
                self.row()
            self.panels.append(panel.to_json(len(self.panels) + 1, self._x, self._y))
            self._x += panel.width
            self._row_height = max(self._row_height, panel.height)
        return self

    def row(self) -> Grid:
        """Start a new row below the tallest panel of the current one."""
        self._y += self._row_height
        self._x = 0
        self._row_height = 0
        return self


def query_variable(name: str, label: str, query: str, description: str, include_all: bool = False) -> dict[str, Any]:
    """A template variable whose values come from Prometheus (``label_values(metric, label)``).

    With ``include_all``, the variable may take several values and "All" means any value
    (``.*``), so queries use it as ``label=~"$name"``.
    """
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": query,
        "refresh": 2,  # on time range change
        "sort": 1,
        "hide": 0,
        "includeAll": include_all,
        "multi": include_all,
        "options": [],
        "skipUrlSync": False,
    }
    if include_all:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": "All", "value": "$__all"}
    return variable


def dashboard(
    uid: str, title: str, description: str, grid: Grid, variables: list[dict[str, Any]], refresh: str = "30s"
) -> dict[str, Any]:
    """A whole dashboard: fixed uid, the panels of ``grid``, the template ``variables``."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["movierec"],
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": grid.panels,
    }
