"""The REST service: FastAPI app, loaded bundle, stores and metrics."""
