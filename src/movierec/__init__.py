"""movierec: a MovieLens recommender, from raw files to served recommendations."""

__version__ = "0.1.0"
