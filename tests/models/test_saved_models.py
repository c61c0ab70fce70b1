"""Loaded SavedModels are reused by content digest, for at most the two latest bundles."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from movierec.models import saved_models


def _save(path: Path, factor: float) -> Path:
    module = tf.Module()
    module.f = tf.function(lambda x: x * factor, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.f})
    return path


def test_the_same_content_is_loaded_once_and_only_two_bundles_are_kept(tmp_path: Path) -> None:
    a, b, c = (_save(tmp_path / name / "model", f) for name, f in (("a", 2.0), ("b", 3.0), ("c", 4.0)))
    loads = []
    real = tf.saved_model.load

    def counting(path: str, *args, **kwargs):
        loads.append(Path(path).parent.name)
        return real(path, *args, **kwargs)

    tf.saved_model.load = counting
    try:

        def load(root: Path, digest: str):
            with saved_models.reuse(root, {"model": digest}):
                return saved_models.load_signature(root / "model")

        first = load(a.parent, "da")
        assert load(a.parent, "da") is first  # same digest: reused
        assert float(first(tf.constant([1.0]))["output_0"][0]) == 2.0
        load(b.parent, "db")
        load(c.parent, "dc")  # a third bundle: "da" is no longer among the two latest
        assert load(a.parent, "da") is not first
        assert saved_models.load_signature(a) is not first  # outside reuse(): a plain load
    finally:
        tf.saved_model.load = real
    assert loads == ["a", "b", "c", "a", "a"]
