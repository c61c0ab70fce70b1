"""Offline evaluation metrics: ranking accuracy, beyond-accuracy and rating error."""

from movierec.evaluation.beyond_accuracy import (
    MIN_POPULARITY,
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    popularity_concentration,
)
from movierec.evaluation.ranking import per_user_ranking_metrics, ranking_metrics
from movierec.evaluation.rating import rating_metrics
from movierec.evaluation.summary import summarise

__all__ = [
    "MIN_POPULARITY",
    "catalogue_coverage",
    "intra_list_diversity",
    "novelty",
    "per_user_ranking_metrics",
    "popularity_concentration",
    "ranking_metrics",
    "rating_metrics",
    "summarise",
]
