"""movierec: a MovieLens recommender, from raw files to served recommendations."""

import os as _os

# TensorFlow Recommenders needs Keras 2 (the tf-keras package). TensorFlow reads this
# variable once, when it is first imported; setting it here, the one place, covers every
# entry point because each imports movierec before TensorFlow.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines, oneDNN notices)
# drowns the pipeline's own output; errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
