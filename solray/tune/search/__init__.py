"""Search algorithms (``solray.tune.search``): the searcher interface, the default
random/grid generator, and wrappers. ``OptunaSearch`` and ``HyperOptSearch`` live in
``solray.tune.search.optuna`` and ``solray.tune.search.hyperopt`` (optional extras)."""

from solray.tune.search.searcher import ConcurrencyLimiter, Repeater, Searcher
from solray.tune.search.variant_generator import BasicVariantGenerator

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "Searcher"]
