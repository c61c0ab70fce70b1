"""Strong simple baselines: most-popular, item-kNN, EASE, and the rating biases."""

from movierec.baselines.biases import BiasBaseline
from movierec.baselines.ease import EASE
from movierec.baselines.itemknn import ItemKNN
from movierec.baselines.popular import MostPopular

__all__ = ["EASE", "BiasBaseline", "ItemKNN", "MostPopular"]
