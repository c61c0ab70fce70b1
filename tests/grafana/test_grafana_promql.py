"""Grafana's variable substitution and the metric names a query reads."""

from __future__ import annotations

import pytest

from movierec.grafana.promql import interval, metric_names, rate_interval, substitute


def test_grafana_intervals() -> None:
    assert interval(60, 200, 1) == 1 and interval(3600, 200, 5) == 18 and interval(10, 200, 15) == 15
    assert rate_interval(1, 1) == 4 and rate_interval(18, 5) == 23 and rate_interval(15, 15) == 60


def test_substitution_replaces_globals_and_variables() -> None:
    expr = 'sum(rate(x{job="$job", dataset=~"${dataset}"}[$__rate_interval])) / increase(y[$__range]) [$__interval]'
    out = substitute(expr, {"job": "api", "dataset": ".*"}, 2, 8, 60)
    assert out == 'sum(rate(x{job="api", dataset=~".*"}[8s])) / increase(y[60s]) [2s]'
    with pytest.raises(ValueError, match="unresolved"):
        substitute('x{job="$other"}', {"job": "api"}, 1, 4, 60)


def test_metric_names_leave_out_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(a_seconds_bucket{stage="total", x=~"a|b"}[5m])))'
        " / on (pid) group_left (version) b_info * bool c_total offset 5m"
        ' or vector(0) and time() - d:recorded{label="e_total"} unless sum without (f) (g)'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_info", "c_total", "d:recorded", "g"}
