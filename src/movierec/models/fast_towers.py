"""The query tower's forward pass in NumPy, for serving one user at a time without TF overhead.

The exported SavedModel stays the contract: a server uses :class:`NumpyQueryTower` only
after checking that it reproduces the SavedModel's embeddings on real inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from movierec.models.layout import QUERY_WEIGHTS


def save_query_weights(tower: Any, out_dir: Path) -> None:
    """Write the query tower's parameters as plain arrays beside its SavedModel."""
    arrays: dict[str, np.ndarray] = {
        "flags": np.array([tower.user_id is not None, tower.history is not None, tower.bare, tower.normalize]),
        "recent": np.array(tower.recent),
        "age_stats": np.array(tower.age_stats, np.float64),
        "demographics": np.array(tower.demographics, dtype=str),
    }
    for name, layer in (("user", tower.user_id), ("history", tower.history)):
        if layer is not None:
            arrays[f"{name}_vocab"] = np.array(layer.lookup.get_vocabulary()[1:], np.int64)
            arrays[f"{name}_embed"] = layer.embed.embeddings.numpy()
    for name, lookup in tower.categorical.items():
        arrays[f"vocab_{name}"] = np.array(lookup.get_vocabulary(), dtype=str)
        arrays[f"embed_{name}"] = tower.categorical_embed[name].embeddings.numpy()
    if getattr(tower, "gru", None) is not None:
        arrays["gru_kernel"], arrays["gru_recurrent"], arrays["gru_bias"] = tower.gru.get_weights()
    if tower.hidden is not None:
        for i, layer in enumerate(tower.hidden.layers):
            arrays[f"hidden_{i}_kernel"], arrays[f"hidden_{i}_bias"] = layer.get_weights()
    np.savez(Path(out_dir) / QUERY_WEIGHTS, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of an ``.npz`` file, or None when the file does not exist."""
    if not Path(path).exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def dense_layers(arrays: dict[str, np.ndarray], prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(kernel, bias)`` pairs saved as ``<prefix>_<i>_kernel`` / ``<prefix>_<i>_bias``."""
    count = sum(1 for k in arrays if k.startswith(f"{prefix}_") and k.endswith("_kernel"))
    return [(arrays[f"{prefix}_{i}_kernel"], arrays[f"{prefix}_{i}_bias"]) for i in range(count)]


def _masked_mean(emb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(emb.dtype)[..., None]
    return (emb * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gru(emb: np.ndarray, mask: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras' GRU (``reset_after=True``, gates z, r, h) over ``emb``'s steps; masked steps keep the state."""
    units = recurrent.shape[0]
    state = np.zeros((emb.shape[0], units), np.float32)
    inputs = emb @ kernel + bias[0]  # every step's input projections at once
    for t in range(emb.shape[1]):
        x = inputs[:, t]
        h = state @ recurrent + bias[1]
        z = _sigmoid(x[:, :units] + h[:, :units])
        r = _sigmoid(x[:, units : 2 * units] + h[:, units : 2 * units])
        candidate = np.tanh(x[:, 2 * units :] + r * h[:, 2 * units :])
        new = z * state + (1.0 - z) * candidate
        state = np.where(mask[:, t : t + 1], new, state).astype(np.float32)
    return state


class NumpyQueryTower:
    """Same computation as :class:`movierec.models.towers.QueryTower`, from saved arrays."""

    def __init__(self, a: dict[str, np.ndarray]):
        self.use_id, self.use_history, self.bare, self.normalize = (bool(x) for x in a["flags"])
        self.recent = int(a["recent"])
        self.age_mean, self.age_std = (float(x) for x in a["age_stats"])
        self.demographics = a["demographics"].tolist()
        self.lookup = {
            n: {int(v): i + 1 for i, v in enumerate(a[f"{n}_vocab"].tolist())}
            for n in ("user", "history")
            if f"{n}_vocab" in a
        }
        self.embed = {n: a[f"{n}_embed"] for n in ("user", "history") if f"{n}_embed" in a}
        self.cat_vocab = {
            n: {v: i for i, v in enumerate(a[f"vocab_{n}"].tolist())} for n in self.demographics if n != "age"
        }
        self.cat_embed = {n: a[f"embed_{n}"] for n in self.cat_vocab}
        self.hidden = dense_layers(a, "hidden")
        self.gru = (a["gru_kernel"], a["gru_recurrent"], a["gru_bias"]) if "gru_kernel" in a else None

    @classmethod
    def load(cls, directory: Path) -> NumpyQueryTower | None:
        """From an export folder, or None when it has no weights file."""
        arrays = load_arrays(Path(directory) / QUERY_WEIGHTS)
        return None if arrays is None else cls(arrays)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Embeddings for a batch of named query inputs (the SavedModel's input names)."""
        parts = []
        if self.use_id:
            table = self.lookup["user"]
            parts.append(self.embed["user"][[table.get(int(u), 0) for u in inputs["user_id"]]])
        if self.use_history:
            history = np.asarray(inputs["history"], np.int64)
            table = self.lookup["history"]
            index = np.vectorize(lambda i: table.get(int(i), 0), otypes=[np.int64])(history)
            emb = self.embed["history"][index]
            mask = index > 0
            parts.append(_masked_mean(emb, mask))
            length = (history >= 0).sum(axis=1, keepdims=True)
            pos = np.arange(history.shape[1])[None, :]
            parts.append(_masked_mean(emb, mask & (pos >= length - self.recent)))
            if self.gru is not None:
                parts.append(_gru(emb, mask, *self.gru))
        for name in self.demographics:
            if name == "age":
                age = np.asarray(inputs["age"], np.float32)
                known = np.isfinite(age)
                scaled = np.where(known, (age - self.age_mean) / self.age_std, 0.0)
                parts.append(np.stack([scaled, known.astype(np.float32)], axis=1))
            else:
                vocab = self.cat_vocab[name]
                parts.append(self.cat_embed[name][[vocab.get(str(v), 0) if v else 0 for v in inputs[name]]])
        out = parts[0] if self.bare else np.concatenate(parts, axis=1).astype(np.float32)
        if not self.bare:
            for i, (kernel, bias) in enumerate(self.hidden):
                out = out @ kernel + bias
                if i < len(self.hidden) - 1:
                    out = np.maximum(out, 0.0)
        if self.normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
