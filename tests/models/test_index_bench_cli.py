"""``movierec bench index`` end to end at a small size: every index built, tuned and measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from movierec.cli import main
from movierec.models.index_bench_options import KINDS

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("build_seconds", "index_bytes", "p50_ms", "p99_ms", "cpu_p99_ms", "batch_qps", "recall")


@pytest.mark.integration
def test_bench_index_measures_every_index_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "bench.json", tmp_path / "recall.png"
    argv = ["--params", str(ROOT / "params.yaml"), "bench", "index", "--sizes", "20k", "--queries", "200"]
    argv += ["--repeats", "1", "--threads", "1,2", "--json", str(out), "--plot", str(plot), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"command", "machine", "options", "rows", "sizes", "summary", "targets"} <= set(report)
    assert report["command"].startswith("movierec bench index --sizes 20000 ")
    assert report["options"]["sizes"] == [20_000] and report["sizes"][0]["run"] is True
    target = report["options"]["target_recall"]
    by_index = {entry["index"]: entry for entry in report["summary"]}
    assert set(by_index) == set(KINDS)
    for kind, entry in by_index.items():
        assert entry["n_items"] == 20_000 and entry["repeats"] == 1, kind
        for field in (*FIELDS, "speedup_p99"):
            assert {"mean", "min", "max"} <= set(entry[field]), (kind, field)
        assert entry["recall"]["min"] >= target, kind  # every index reaches its bar on fresh queries
        assert entry["index_bytes"]["mean"] >= 20_000 * 64 * 4, kind  # at least the vectors themselves
        assert entry["p50_ms"]["mean"] <= entry["p99_ms"]["mean"], kind
        assert kind in printed
    assert by_index["brute"]["recall"]["mean"] == 1.0
    for row in report["rows"]:
        assert (
            set(row["latency_by_threads"]) == {"1", "2"} and row["p99_ms"] == row["latency_by_threads"]["1"]["p99_ms"]
        )
        if row["index"] != "brute":  # the ladder tried, and the setting chosen is one of its rungs
            assert row["ladder"] and any(row["setting"].items() <= rung.items() for rung in row["ladder"])
    assert report["targets"]["n_items"] == 1_000_000 and report["targets"]["ok"] is None  # 1M not measured here
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
