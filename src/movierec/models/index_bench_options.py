"""What one ``movierec bench index`` run measures: its options (kept free of heavy imports,
so that the command line's parser can read the defaults cheaply)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from movierec.models.index_rules import IndexRules

KINDS = ("brute", "faiss-ivf", "faiss-hnsw", "scann")


@dataclass(frozen=True)
class BenchOptions:
    """What one ``movierec bench index`` run measures (the CLI's options)."""

    sizes: tuple[int, ...] = (100_000, 1_000_000)
    dim: int = 64
    k: int = 100
    queries: int = 1000
    batch: int = 256
    repeats: int = 3
    seed: int = 0
    indexes: tuple[str, ...] = KINDS
    threads: tuple[int, ...] = (1,)  # single queries are timed with each; the first is the headline
    batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    target_recall: float = 0.95
    themes: int = 256
    max_memory_share: float = 0.6
    rules: IndexRules = field(default_factory=IndexRules.default)

    def check(self) -> None:
        """Raise ValueError naming the first option out of range."""
        for name in ("dim", "k", "queries", "batch", "repeats", "batch_threads", "themes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.threads or min(self.threads) < 1:
            raise ValueError(f"--threads must be counts of at least 1, got {list(self.threads)}")
        if not self.sizes or min(self.sizes) <= self.k:
            raise ValueError(f"every size must exceed k={self.k}, got {list(self.sizes)}")
        unknown = [kind for kind in self.indexes if kind not in KINDS]
        if unknown or not self.indexes:
            raise ValueError(f"unknown index(es) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
        if not 0 < self.target_recall <= 1:
            raise ValueError(f"--target-recall must be in (0, 1], got {self.target_recall}")
