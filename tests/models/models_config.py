"""The tiny model configuration shared by the model tests."""

WIDTHS = {"genres": 4, "title": 6, "tags": 4}
CONFIG = {
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
    "query": {"use_id": True, "use_history": True, "use_features": True, "recent_items": 3},
    "candidate": {"use_features": True},
}
