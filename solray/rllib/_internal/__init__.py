"""solray.rllib internals: env runners, learners, modules, metrics, checkpoints."""
