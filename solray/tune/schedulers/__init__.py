"""Trial schedulers (``solray.tune.schedulers``): decide, from each result, whether a trial
continues, pauses or stops, and which trial runs next."""

from solray.tune.schedulers.async_hyperband import ASHAScheduler, AsyncHyperBandScheduler
from solray.tune.schedulers.hyperband import HyperBandScheduler
from solray.tune.schedulers.median_stopping_rule import MedianStoppingRule
from solray.tune.schedulers.pbt import PopulationBasedTraining
from solray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "HyperBandScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "TrialScheduler",
]
