"""Seeded synthetic item and query embeddings shaped like a trained two-tower model's.

Uniform random vectors make every index look alike (nothing to partition, no hubs), so the
benchmark draws from a structure that trained item embeddings show instead:

* **clusters of uneven size**: items fall into themes (genres, franchises, eras); a theme's
  share of the catalogue follows a Zipf law, so a few themes are large and many are small;
* **an uneven spectrum**: a few directions carry most of the variance (singular values
  decaying like ``1 / sqrt(rank)``), as in embeddings trained with a softmax over items;
* **spread within a theme** that differs from theme to theme;
* **norms that vary** (log-normal): with dot-product scoring, popular items grow longer
  vectors and win more queries; that is what makes maximum inner-product search harder
  than a nearest-neighbour search on the sphere.

Queries are drawn from the same structure: a user's taste is one theme (chosen with the
themes' popularity), or for a third of them a blend of two, plus noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 250_000  # rows generated at a time (bounds the float64 scratch to about 130 MB at dim 64)


@dataclass(frozen=True)
class EmbeddingSpace:
    """The hidden structure items and queries are drawn from (one per seed and size).

    Attributes:
        centres: ``(themes, dim)`` theme centres.
        weights: ``(themes,)`` each theme's share of items and of queries (sums to 1).
        spread: ``(themes,)`` each theme's standard deviation around its centre.
        mixing: ``(dim, dim)`` the map giving the space its decaying spectrum.
    """

    centres: np.ndarray
    weights: np.ndarray
    spread: np.ndarray
    mixing: np.ndarray

    @classmethod
    def draw(cls, dim: int, themes: int, rng: np.random.Generator) -> EmbeddingSpace:
        """A random structure with ``themes`` clusters in ``dim`` dimensions."""
        if dim < 1 or themes < 1:
            raise ValueError(f"need dim >= 1 and themes >= 1, got dim={dim}, themes={themes}")
        singular = 1.0 / np.sqrt(np.arange(1, dim + 1))
        basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        mixing = (basis * singular) @ np.linalg.qr(rng.normal(size=(dim, dim)))[0]
        weights = 1.0 / np.arange(1, themes + 1) ** 1.0
        weights = rng.permutation(weights / weights.sum())
        return cls(
            centres=rng.normal(size=(themes, dim)),
            weights=weights,
            spread=rng.uniform(0.35, 0.75, size=themes),
            mixing=mixing,
        )

    @property
    def dim(self) -> int:
        return int(self.centres.shape[1])

    def items(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, dim)`` float32 item embeddings, generated in chunks of :data:`CHUNK` rows."""
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            theme = rng.choice(self.weights.size, size=size, p=self.weights)
            raw = self.centres[theme] + rng.normal(size=(size, self.dim)) * self.spread[theme, None]
            norms = rng.lognormal(mean=0.0, sigma=0.35, size=(size, 1))
            out[start : start + size] = (raw @ self.mixing) * norms
        return out

    def queries(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, dim)`` float32 query embeddings: one theme, or a blend of two, plus noise."""
        first = rng.choice(self.weights.size, size=n, p=self.weights)
        second = rng.choice(self.weights.size, size=n, p=self.weights)
        share = np.where(rng.random(n) < 1 / 3, rng.uniform(0.3, 0.7, n), 1.0)[:, None]
        taste = share * self.centres[first] + (1 - share) * self.centres[second]
        raw = taste + rng.normal(size=(n, self.dim)) * 0.5
        return (raw @ self.mixing).astype(np.float32)


def synthetic_catalogue(
    n_items: int, dim: int, n_queries: int, seed: int, themes: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item embeddings and two disjoint query sets (tuning, evaluation) from one seeded space.

    Args:
        n_items: catalogue size.
        dim: embedding width.
        n_queries: queries in each set.
        seed: the random seed; the same arguments always give the same arrays.
        themes: clusters in the space.

    Returns:
        ``(items, tuning_queries, eval_queries)``: float32 arrays of ``n_items`` and
        ``n_queries`` rows.
    """
    rng = np.random.default_rng(seed)
    space = EmbeddingSpace.draw(dim, themes, rng)
    items = space.items(n_items, rng)
    return items, space.queries(n_queries, rng), space.queries(n_queries, rng)
