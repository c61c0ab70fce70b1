"""The ranker's interaction score for one user's candidates, with the first layer split by input.

The ranker's first layer multiplies every pair's inputs (23 normalised dense features and
two categorical embeddings) by one kernel. For one request most inputs do not vary across
its pairs: the item-only features are fixed per catalogue item, the user's activity and
demographics per request. So, by linearity, the first layer's output is the sum of

- a per-item part, ``((item features - mean) / std) @ kernel[item rows]``, computed for the
  whole catalogue at load;
- a per-request part from the user's constants and embeddings (one vector);
- the per-pair part, the 11 pair features times their rows of the kernel;

then the bias and the rest of the network as usual. The scores equal
:class:`~movierec.models.ranking_export.NumpyRanker`'s up to float rounding, which is
checked at load on real users (:func:`check_fused`); the ratings still come from the
exported rating biases or the full forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from movierec.models.ranking_export import NumpyRanker
from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES
from movierec.serving.fast_features import HISTORY_FEATURES, ServingFeatures, check_rows

SCORE_TOLERANCE = 1e-5  # as the NumPy ranker's own check against the SavedModel


class FusedRanker:
    """Interaction probabilities for one user's candidates (see the module docstring)."""

    def __init__(self, ranker: NumpyRanker, features: ServingFeatures):
        self.ranker = ranker
        self.features = features
        kernel, self.bias = ranker.trunk[0]
        means = np.asarray(ranker.means, np.float32).reshape(-1)
        stds = np.asarray(ranker.stds, np.float32).reshape(-1)
        position = {name: i for i, name in enumerate(DENSE_FEATURES)}
        dropped = set(features.ctx.dropped)
        self.item_names = [n for n in features.item_features if n not in dropped]
        pair_like = {"retrieval_score", *HISTORY_FEATURES}
        self.pair_names = [n for n in DENSE_FEATURES if n in pair_like and n not in dropped]
        self.constant_names = [n for n in DENSE_FEATURES if n not in self.item_names and n not in self.pair_names]
        dense_kernel = kernel[: len(DENSE_FEATURES)]

        def part(names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            index = [position[n] for n in names]
            return means[index], stds[index], dense_kernel[index]

        item_means, item_stds, item_kernel = part(self.item_names)
        items = np.stack([features.item_features[n] for n in self.item_names], axis=1) if self.item_names else None
        self.item_part = (
            ((items - item_means) / item_stds) @ item_kernel
            if items is not None
            else np.zeros((len(features.ctx.catalogue), kernel.shape[1]), np.float32)
        ).astype(np.float32)
        self.item_part.setflags(write=False)
        self.pair_means, self.pair_stds, self.pair_kernel = part(self.pair_names)
        self.constant_means, self.constant_stds, self.constant_kernel = part(self.constant_names)
        offset = len(DENSE_FEATURES)
        self.embedding_kernels = {}
        for name in CATEGORICAL_FEATURES:  # the embeddings follow the dense inputs, in this order
            width = ranker.embed[name].shape[1]
            self.embedding_kernels[name] = kernel[offset : offset + width]
            offset += width

    def scores(self, constants: dict[str, Any], pairs: dict[str, np.ndarray], item_rows: np.ndarray) -> np.ndarray:
        """Interaction probabilities of ``item_rows`` for the user described by ``constants``
        (from :meth:`ServingFeatures.user_constants`) and ``pairs`` (its pair columns)."""
        dropped = set(self.features.ctx.dropped)
        values = np.array([0.0 if n in dropped else constants[n] for n in self.constant_names], np.float32)
        user = ((values - self.constant_means) / self.constant_stds) @ self.constant_kernel + self.bias
        for name in CATEGORICAL_FEATURES:
            index = self.ranker.vocab[name].get(str(constants[name]), 0)
            user = user + self.ranker.embed[name][index] @ self.embedding_kernels[name]
        pair = np.stack([np.asarray(pairs[n], np.float32) for n in self.pair_names], axis=1)
        hidden = np.maximum(
            self.item_part[item_rows] + ((pair - self.pair_means) / self.pair_stds) @ self.pair_kernel + user, 0.0
        )
        for kernel, bias in self.ranker.trunk[1:]:
            hidden = np.maximum(hidden @ kernel + bias, 0.0)
        logit = (hidden @ self.ranker.click[0][0] + self.ranker.click[0][1])[:, 0]
        return 1.0 / (1.0 + np.exp(-logit))


def check_fused(fused: FusedRanker, users: list[int], query_of: Any, n_items: int = 100) -> bool:
    """Whether ``fused`` gives the NumPy ranker's scores for ``users`` on the first
    ``n_items`` catalogue rows and a spread (:func:`~movierec.serving.fast_features.check_rows`),
    with the known and an overridden demography."""
    features = fused.features
    rows = check_rows(len(features.ctx.catalogue), n_items)
    for user in users:
        q = query_of(user)
        for override in ({}, {"age": 41.0, "gender": "F", "occupation": "not-a-known-value"}):
            feats = features(user, None, rows, q)
            constants = features.user_constants(user, **override)
            for name in ("user_age", "user_age_known", *CATEGORICAL_FEATURES):
                feats[name] = np.full(rows.size, constants[name], feats[name].dtype)
            want, _ = fused.ranker.predict(feats)
            got = fused.scores(constants, features.pair_columns(user, None, rows, q), rows)
            if not np.allclose(got, want, atol=SCORE_TOLERANCE):
                return False
    return True
