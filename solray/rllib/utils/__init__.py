"""Ray's ``ray.rllib.utils`` path: ``metrics`` (result key names)."""
