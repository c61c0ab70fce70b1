"""The data layer: fetching datasets, parsing every GroupLens format, the canonical schema."""
