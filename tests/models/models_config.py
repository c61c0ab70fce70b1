"""The tiny model configuration shared by the model tests: the typed settings' defaults
(the only home of defaults) with the sizes shrunk."""

from movierec.settings import RetrievalSettings

WIDTHS = {"genres": 4, "title": 6, "tags": 4}
_DEFAULTS = RetrievalSettings().model_dump(exclude={"ablation"})
CONFIG = {
    **_DEFAULTS,
    "embedding_dim": 16,
    "hidden_units": 32,
    "normalize": True,
    "temperature": 0.1,
    "logq": True,
    "history_len": 8,
    "batch_size": 64,
    "learning_rate": 0.01,
    "epochs": 3,
    "min_token_count": 1,
    "query": {**_DEFAULTS["query"], "use_id": True, "use_history": True, "use_features": True, "recent_items": 3},
    "candidate": {"use_features": True},
    "blend": {**_DEFAULTS["blend"], "weight": 0},  # the towers alone unless a test sets it
}
