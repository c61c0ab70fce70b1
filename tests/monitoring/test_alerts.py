"""The Prometheus alert rules: valid for promtool, unit-tested with synthetic series, on real metrics.

``promtool`` comes with Debian's ``prometheus`` package (``make system-deps``). Without it these
tests skip, unless ``MOVIEREC_REQUIRE_PROMETHEUS`` is set (as ``.ci/run`` does): then they fail.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml
from processes import monitoring_binary
from prometheus_client.metrics import MetricWrapperBase

from movierec.serving import metrics as serving_metrics
from movierec.tracking import pushgateway

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*_test.yml"))
DAG = ROOT / "dags" / "ml_pipeline_dag.py"
SEVERITIES = {"critical", "warning"}
# labels every scraped series gets from its scrape target
TARGET_LABELS = {"job", "instance"}
# sample-name suffixes of each prometheus_client metric type (Counter and Info names are stored bare)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}
# PromQL words that look like metric names: operators and modifiers
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"inf", "nan"}


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary; skips without one, fails instead under ``MOVIEREC_REQUIRE_PROMETHEUS``."""
    return monitoring_binary("promtool", "prometheus")


def _run(promtool: str, *args: str) -> str:
    """Run ``promtool args`` from the repository root; fails the test with promtool's output on error."""
    done = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed (exit {done.returncode}):\n{output}"
    return output


def _rules() -> list[dict[str, Any]]:
    """Every alerting rule of ``alerts.yml``."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_is_valid(promtool: str) -> None:
    """``promtool check config`` on the repository's scrape config (it loads alerts.yml too)."""
    _run(promtool, "check", "config", str(PROMETHEUS.relative_to(ROOT) / "prometheus.yml"))


def test_alert_rules_are_valid(promtool: str) -> None:
    output = _run(promtool, "check", "rules", str(RULES.relative_to(ROOT)))
    assert f"{len(_rules())} rules found" in output, output


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    """``promtool test rules``: every alert fires on its synthetic series and stays silent on others."""
    assert RULE_TESTS, "no prometheus/tests/*_test.yml"
    output = _run(promtool, "test", "rules", *(str(path.relative_to(ROOT)) for path in RULE_TESTS))
    assert output.count("SUCCESS") == len(RULE_TESTS), output


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    """Each alert is expected to fire in some rule test, and some test group never sees it fire."""
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            expected: dict[str, bool] = {}
            for check in case["alert_rule_test"]:
                name = check["alertname"]
                expected[name] = expected.get(name, False) or bool(check.get("exp_alerts"))
            fires |= {name for name, fired in expected.items() if fired}
            silent |= {name for name, fired in expected.items() if not fired}
    names = {rule["alert"] for rule in _rules()}
    assert len(names) >= 6
    assert names - fires == set(), "alerts never expected to fire in prometheus/tests"
    assert names - silent == set(), "alerts without a test group where they stay silent"
    assert (fires | silent) - names == set(), "rule tests name alerts that alerts.yml lacks"


def test_every_rule_has_a_for_a_severity_and_annotations() -> None:
    for rule in _rules():
        assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", ""))), rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip() and annotations.get("description", "").strip(), rule["alert"]


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels or durations)."""
    expr = _strip_strings(expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for found in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", expr):
        followed = expr[found.end() :].lstrip()
        if not followed.startswith("(") and found.group().lower() not in KEYWORDS:
            names.add(found.group())
    return names


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """``(metric, label names it matches on)`` for every ``metric{...}`` selector of an expression."""
    expr = _strip_strings(expr)
    return [
        (found.group(1), set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", found.group(2))))
        for found in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, endpoint) (rate(a_bucket{stage="total",x=~"y|z"}[5m])) > 0.25 or b == 0', {"a_bucket", "b"}),
        ("time() - max by (dataset) (c_seconds{job='j'}) > 8 * 86400 and on() absent(d)", {"c_seconds", "d"}),
        ("histogram_quantile(0.99, e) > 1e3 unless f offset 5m", {"e", "f"}),
    ],
)
def test_metric_names_finds_the_selected_series(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def _serving_metrics() -> dict[str, set[str]]:
    """Sample names of the service's metrics (src/movierec/serving/metrics.py) and their labels."""
    defined: dict[str, set[str]] = {}
    for metric in vars(serving_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in SUFFIXES[metric._type]:
                extra = {"le"} if suffix == "_bucket" else set()
                defined[metric._name + suffix] = set(metric._labelnames) | extra | TARGET_LABELS
    return defined


def _pushed_metrics(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Sample names the training pushes (src/movierec/tracking/pushgateway.py) and their labels.

    Runs the real ``push`` with made-up values and the Pushgateway call replaced, so the names
    are read from what the code pushes, not from a copy of them.
    """
    pushed: dict[str, Any] = {}

    def fake_push(gateway: str, job: str, registry: Any, grouping_key: dict[str, str], **kwargs: Any) -> None:
        pushed.update(job=job, registry=registry, grouping_key=grouping_key)

    values = {
        "dataset": "ml-100k",
        "retrieval_accuracy": 0.6,
        "ranking_ndcg": 0.3,
        "durations": {"train_retrieval": 100.0},
        "registered_version": 2,
        "champion_version": 1,
        "bars_met": True,
    }
    monkeypatch.setattr(pushgateway, "training_values", lambda settings, paths: values)
    monkeypatch.setattr(prometheus_client, "push_to_gateway", fake_push)
    pushgateway.push(None, None, gateway="127.0.0.1:9")  # type: ignore[arg-type]
    assert pushed["job"] == pushgateway.JOB
    defined: dict[str, set[str]] = {}
    for family in pushed["registry"].collect():
        for sample in family.samples:
            labels = set(sample.labels) | set(pushed["grouping_key"]) | TARGET_LABELS
            defined[sample.name] = defined.get(sample.name, set()) | labels
    return defined


def test_alerts_use_only_metrics_the_project_defines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every metric (and label) an alert selects is exported by the service, pushed by training, or ``up``.

    A metric renamed in serving/metrics.py or tracking/pushgateway.py without the rules following
    would leave its alert silent forever; this fails instead.
    """
    defined = {**_serving_metrics(), **_pushed_metrics(monkeypatch), "up": set(TARGET_LABELS)}
    assert {"recommendation_requests_total", "training_last_success_timestamp_seconds"} <= set(defined)
    used: set[str] = set()
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert names <= set(defined), f"{rule['alert']} uses metrics no code defines: {sorted(names - set(defined))}"
        for name, labels in selector_labels(rule["expr"]):
            assert labels <= defined[name], f"{rule['alert']}: {name} has no labels {sorted(labels - defined[name])}"
        used |= names
    for name in ("training_last_success_timestamp_seconds", "training_quality_bars_met", "up", "fallback_total"):
        assert name in used, f"no alert on {name}"


def _staleness_threshold_seconds() -> float:
    """The seconds after which MovierecModelStale fires (``... > N [* M ...]`` in its expression)."""
    (rule,) = [rule for rule in _rules() if rule["alert"] == "MovierecModelStale"]
    found = re.search(r">\s*([\d\s*.]+)$", rule["expr"].strip())
    assert found, rule["expr"]
    seconds = 1.0
    for factor in found.group(1).split("*"):
        seconds *= float(factor)
    return seconds


def test_staleness_threshold_follows_the_dag_schedule() -> None:
    """The model counts as stale a little after one scheduled run was missed, never between two runs.

    Reads the cron expression of ``ml_pipeline_dag`` (weekly, Mondays 03:00 UTC): the threshold
    must exceed the longest gap between two scheduled runs, by at most a day. Change the
    schedule, and this asks for the threshold (and its comment in alerts.yml) to follow.
    """
    croniter = pytest.importorskip("croniter").croniter
    found = re.search(r'CronTriggerTimetable\(\s*"([^"]+)"', DAG.read_text(encoding="utf-8"))
    assert found, "ml_pipeline_dag's schedule is no longer a CronTriggerTimetable"
    runs = croniter(found.group(1), datetime(2025, 1, 1, tzinfo=UTC))
    times = [runs.get_next(datetime) for _ in range(60)]
    longest = max(later - earlier for earlier, later in pairwise(times))
    threshold = timedelta(seconds=_staleness_threshold_seconds())
    assert longest < threshold <= longest + timedelta(days=1), (found.group(1), longest, threshold)
