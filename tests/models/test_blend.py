"""The first stage's blend of the towers with the history's item neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.models.blend import Blend, Blender


def _similarity(n: int, rng: np.random.Generator, per_row: int = 4) -> sp.csr_matrix:
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, n, rows.size)
    sim = sp.csr_matrix((rng.random(rows.size), (rows, cols)), shape=(n, n))
    sim.setdiag(0)
    sim.eliminate_zeros()
    return sim


def _blender(
    weight: float = 1.0, tau: float = 5.0, n: int = 300, dim: int = 8, seed: int = 0
) -> tuple[Blender, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    return Blender(Blend(weight, tau, max_history=20), emb, _similarity(n, rng)), emb


def test_from_config_reads_validates_and_turns_off_at_zero() -> None:
    assert Blend.from_config({}) is None
    assert Blend.from_config({"blend": {"weight": 0, "tau": 10}}) is None
    assert Blend.from_config({"blend": {"weight": 2, "tau": 3}}) == Blend(2.0, 3.0, 50)
    assert Blend.from_config({"blend": Blend(1.5, 4.0, 7).as_config()}) == Blend(1.5, 4.0, 7)
    for bad, word in (
        ({"weight": 1}, "'weight' and 'tau'"),
        ({"weight": -1, "tau": 3}, "weight >= 0"),
        ({"weight": 1, "tau": 0}, "tau > 0"),
        ({"weight": "x", "tau": 3}, "weight must be a number"),
        ({"weight": 1, "tau": 3, "max_history": 0}, "max_history"),
    ):
        with pytest.raises(ValueError, match=word):
            Blend.from_config({"blend": bad})


def test_neighbour_scores_weight_recent_history_items_more() -> None:
    sim = sp.csr_matrix(np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    blender = Blender(Blend(1.0, 2.0), np.eye(4, dtype=np.float32), sim)
    support, values = blender.neighbours(np.array([0, 1]))  # item 1 is the latest
    got = dict(zip(support.tolist(), values.tolist()))
    assert got == pytest.approx({1: np.exp(-1 / 2.0), 2: 1.0})
    assert blender.neighbours(np.array([], np.int64))[0].size == 0
    # only the latest max_history items count
    short = Blender(Blend(1.0, 2.0, max_history=1), np.eye(4, dtype=np.float32), sim)
    assert short.neighbours(np.array([0, 1]))[0].tolist() == [2]


def test_full_scores_are_the_standardised_sum() -> None:
    blender, emb = _blender(weight=0.7)
    rng = np.random.default_rng(1)
    q = rng.normal(size=emb.shape[1]).astype(np.float32)
    history = rng.choice(len(emb), 15, replace=False)
    tower = emb @ q
    got = blender.full_scores(q, tower, history)
    support, values = blender.neighbours(history)
    nb = np.zeros(len(emb))
    nb[support] = values
    want = tower / tower.std() + 0.7 * nb / nb.std()  # the closed-form sd equals the empirical one
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a weight of 0 would leave the towers' order; a large weight follows the neighbours
    heavy, _ = _blender(weight=1e6)
    top = np.argsort(-heavy.full_scores(q, tower, history))[: support.size]
    assert set(top.tolist()) == set(support.tolist())


def test_candidates_from_an_index_agree_with_the_full_scores() -> None:
    blender, emb = _blender()
    rng = np.random.default_rng(2)
    for _ in range(5):
        q = rng.normal(size=emb.shape[1]).astype(np.float32)
        history = rng.choice(len(emb), 10, replace=False)
        tower = emb @ q
        full = blender.full_scores(q, tower, history)
        k = 20
        index_rows = np.argsort(-tower)[:k]  # an exact index's top k of the towers
        rows, scores = blender.candidates(q, index_rows, tower[index_rows], history, emb)
        assert len(set(rows.tolist())) == rows.size
        np.testing.assert_allclose(scores, full[rows], rtol=1e-5, atol=1e-6)
        # the blended top k over the catalogue is inside the union
        assert set(np.argsort(-full)[:k].tolist()) <= set(rows.tolist())


def test_blender_rejects_a_misaligned_similarity() -> None:
    with pytest.raises(ValueError, match="catalogue has 5 items"):
        Blender(Blend(1.0, 3.0), np.zeros((5, 2), np.float32), sp.csr_matrix((4, 4)))
