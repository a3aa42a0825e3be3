"""The dress locator (issue 3): where the dress is in a catalog photo, so facets and similarity
can work on the dress crop. OverFeat / TiefVision style: a background network scores every
patch of a dense feature map, a location network regresses the dress box from each dress patch,
and the boxes of confident patches are averaged, weighted by their probability.
"""

from batch_jobs.locator.evaluate import evaluate_current_locator, evaluate_locator
from batch_jobs.locator.inference import LocatedBox, Locator
from batch_jobs.locator.train import LocatorDataError, train_locator

__all__ = [
    "LocatedBox",
    "Locator",
    "LocatorDataError",
    "evaluate_current_locator",
    "evaluate_locator",
    "train_locator",
]
