"""The dashboard files: generated from the code, valid against Grafana 11.6's schema, complete panels,
and provisioned by the files in grafana/provisioning/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from movierec.grafana import DATASOURCE, SCHEMA_VERSION
from movierec.grafana.__main__ import main
from movierec.grafana.dashboards import DASHBOARDS
from movierec.grafana.panels import Grid, stat, steps

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
GLOBALS = {"__interval", "__rate_interval", "__range"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_files_are_what_the_generator_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in FILES) == sorted(DASHBOARDS)
    assert main(["--check", "--out", str(GRAFANA / "dashboards")]) == 0, capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 0
    (tmp_path / "movierec-api.json").write_text("{}")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "movierec-api.json" in capsys.readouterr().err


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_dashboard_is_valid_against_the_grafana_schema(path: Path) -> None:
    schema = _load(GRAFANA / "schema" / "dashboard-11.6.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(_load(path))
    ]
    assert not errors, errors


def test_the_schema_rejects_what_grafana_would_not_load() -> None:
    validator = jsonschema.Draft7Validator(_load(GRAFANA / "schema" / "dashboard-11.6.schema.json"))
    board = _load(FILES[0])
    assert validator.is_valid(board)
    for broken in (
        {**board, "schemaVersion": "41"},
        {**board, "panelz": []},
        {**board, "panels": [{**board["panels"][0], "gridPos": {"x": 0, "y": 0, "w": "wide", "h": 8}}]},
        {**board, "panels": [{**board["panels"][0], "fieldconfig": {}}]},
        {**board, "templating": {"list": [{"name": "job"}]}},  # a variable needs a type
    ):
        assert not validator.is_valid(broken)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_panel_is_complete(path: Path) -> None:
    board = _load(path)
    assert board["schemaVersion"] == SCHEMA_VERSION and re.fullmatch(r"[a-z0-9-]{8,40}", board["uid"])
    variables = {v["name"] for v in board["templating"]["list"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        where = f"{path.name}: {panel['title']}"
        assert panel["title"] and len(panel["description"]) > 40, where
        assert panel["datasource"] == DATASOURCE and panel["type"] in ("timeseries", "stat"), where
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"], where
        thresholds = defaults["thresholds"]["steps"]
        assert thresholds[0]["value"] is None, where  # the base colour, from minus infinity
        values = [s["value"] for s in thresholds[1:]]
        assert values == sorted(values), where
        assert panel["targets"] and all(t["expr"] and t["datasource"] == DATASOURCE for t in panel["targets"]), where
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= variables | GLOBALS, (where, used - variables - GLOBALS)
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where
        mine = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not mine & cells, f"{where} overlaps another panel"
        cells |= mine


def test_dashboard_uids_and_titles_are_unique() -> None:
    boards = [_load(path) for path in FILES]
    assert len({b["uid"] for b in boards}) == len({b["title"] for b in boards}) == len(boards) == 3


def test_the_builders_refuse_misplaced_panels_and_unordered_thresholds() -> None:
    with pytest.raises(ValueError, match="increase"):
        steps("green", (10, "red"), (5, "yellow"))
    with pytest.raises(ValueError, match="wider"):
        Grid().add(stat("t", "d", "s", [], steps("green"), width=25))
    grid = Grid().add(*(stat(f"p{n}", "d", "s", [], steps("green")) for n in range(5)))
    assert [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in grid.panels] == [(0, 0), (6, 0), (12, 0), (18, 0), (0, 5)]


def test_provisioning_names_the_data_source_and_the_dashboards_folder() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert sources["apiVersion"] == 1
    assert {"uid": source["uid"], "type": source["type"]} == DATASOURCE and source["url"].startswith("http")
    assert source["jsonData"]["timeInterval"] == "5s"  # prometheus/prometheus.yml's scrape interval
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["global"]["scrape_interval"] == source["jsonData"]["timeInterval"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "movierec.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    readme = (GRAFANA / "README.md").read_text()
    assert provider["options"]["path"] in readme and "GF_PATHS_PROVISIONING" in readme


def test_the_vendored_schema_names_its_source_and_licence() -> None:
    schema = _load(GRAFANA / "schema" / "dashboard-11.6.schema.json")
    assert "@grafana/schema 11.6" in schema["$comment"] and "Apache License 2.0" in schema["$comment"]
    assert (GRAFANA / "schema" / "LICENSE_APACHE2").read_text().lstrip().startswith("Apache License")
