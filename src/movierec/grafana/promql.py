"""What Grafana does to a panel's PromQL before sending it, and which metrics a query reads.

Used by the tests that run every panel against a real Prometheus: Grafana replaces its
global variables (``$__interval``, ``$__rate_interval``, ``$__range``) and the dashboard's
template variables in the query text, then sends a range query.
"""

from __future__ import annotations

import math
import re

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAMES = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)(\s*\()?")


def interval(range_seconds: float, max_data_points: int, min_interval: float) -> int:
    """Grafana's ``$__interval`` in whole seconds: the range over the points wanted, at least ``min_interval``.

    (Grafana also rounds to a "nice" step; whole seconds are what a test over a minute needs.)
    """
    return max(math.ceil(min_interval), math.ceil(range_seconds / max_data_points))


def rate_interval(interval_seconds: float, scrape_interval: float) -> int:
    """Grafana's ``$__rate_interval``: ``max($__interval + scrape interval, 4 x scrape interval)``."""
    return math.ceil(max(interval_seconds + scrape_interval, 4 * scrape_interval))


def substitute(expr: str, variables: dict[str, str], interval_s: int, rate_interval_s: int, range_s: int) -> str:
    """``expr`` with Grafana's global variables and the template ``variables`` replaced."""
    out = expr.replace("$__rate_interval", f"{rate_interval_s}s")
    out = out.replace("$__interval", f"{interval_s}s").replace("$__range", f"{range_s}s")
    for name in sorted(variables, key=len, reverse=True):  # $dataset before $data
        out = out.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    if "$" in out:
        raise ValueError(f"unresolved variable in {out!r}")
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    return {name for name, call in _NAMES.findall(text) if not call and name.lower() not in KEYWORDS}
