"""The per-request time budget: a request still working after its budget is answered 503.

Every stage of a request is bounded by construction (capped sizes, vectorised work), so a
request cannot hold a core for long; the budget is the guard on top: between stages the
route checks the time spent, and a request over budget stops there with a 503 that names
the stage, instead of finishing late for a client that has likely given up. The check is
cooperative (a running stage is not interrupted), so a request may exceed the budget by
at most one stage's bounded cost.
"""

from __future__ import annotations

import time


class OverBudget(Exception):
    """A request used up its time budget."""

    def __init__(self, stage: str, budget: float, spent: float):
        self.stage = stage
        super().__init__(
            f"the request took {spent:.3f} s by the end of its {stage} stage, over its "
            f"{budget:g} s budget (MOVIEREC_REQUEST_BUDGET_SECONDS); retry, or ask for fewer items"
        )


class Budget:
    """The time a request may take, counted from ``started`` (a ``time.perf_counter()`` value)."""

    __slots__ = ("seconds", "started")

    def __init__(self, seconds: float, started: float | None = None):
        self.seconds = seconds
        self.started = time.perf_counter() if started is None else started

    def check(self, stage: str) -> None:
        """Raise :class:`OverBudget` when the budget is spent after ``stage``."""
        spent = time.perf_counter() - self.started
        if spent > self.seconds:
            raise OverBudget(stage, self.seconds, spent)
