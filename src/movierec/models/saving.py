"""Saving SavedModels reproducibly: the same model gives the same bytes.

TensorFlow writes a random ``uuid`` into every SavedModel's ``fingerprint.pb``, so saving the
same weights twice gives two different folders, DVC sees a changed output, and every stage
after it looks stale. :func:`save` clears that one field (the fingerprint's hashes of the
graph, signatures and checkpoint stay, and loading does not read the uuid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

FINGERPRINT = "fingerprint.pb"


def save(
    module: tf.Module, path: str | Path, signatures: Any, options: tf.saved_model.SaveOptions | None = None
) -> None:
    """``tf.saved_model.save`` with a reproducible fingerprint (see the module's docstring)."""
    tf.saved_model.save(module, str(path), signatures=signatures, options=options)
    clear_fingerprint_uuid(Path(path))


def clear_fingerprint_uuid(path: Path) -> None:
    """Rewrite ``path/fingerprint.pb`` without its random uuid (no-op when there is none)."""
    from tensorflow.core.protobuf import fingerprint_pb2

    file = Path(path) / FINGERPRINT
    if not file.exists():
        return
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(file.read_bytes())
    if fingerprint.uuid:
        fingerprint.ClearField("uuid")
        file.write_bytes(fingerprint.SerializeToString(deterministic=True))
