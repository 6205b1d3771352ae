"""The main demo job: a MapReduce word count and a Monte Carlo estimate of pi.

Runs on an embedded local cluster (no servers to install): ``make demo``. Written against
Ray's API; it runs unchanged on Ray with ``import ray``.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import solray as ray

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "ray and solray run python at scale",
    "the dog sleeps while the fox runs",
    "tasks actors and objects are the core of ray",
] * 250


@ray.remote
def map_words(lines: list[str]) -> dict[str, int]:
    return dict(Counter(word for line in lines for word in line.split()))


@ray.remote
def reduce_counts(*partials: dict[str, int]) -> dict[str, int]:
    total: Counter = Counter()
    for part in partials:
        total.update(part)
    return dict(total)


@ray.remote
def sample_pi(num_samples: int, seed: int) -> int:
    rng = random.Random(seed)
    return sum(1 for _ in range(num_samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)


@ray.remote
class ProgressActor:
    """Collects how many samples each task has finished."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0

    def report(self, n: int) -> None:
        self.done += n

    def progress(self) -> float:
        return self.done / self.total


@ray.remote
def sample_and_report(progress: ProgressActor, num_samples: int, seed: int) -> int:
    inside = ray.get(sample_pi.remote(num_samples, seed))
    ray.get(progress.report.remote(num_samples))
    return inside


def word_count(num_chunks: int = 8) -> dict[str, int]:
    size = len(CORPUS) // num_chunks
    chunks = [CORPUS[i * size : (i + 1) * size] for i in range(num_chunks)]
    partials = [map_words.remote(chunk) for chunk in chunks]
    return ray.get(reduce_counts.remote(*partials))


def monte_carlo_pi(num_tasks: int = 8, samples_per_task: int = 200_000) -> float:
    progress = ProgressActor.remote(num_tasks * samples_per_task)
    refs = [sample_and_report.remote(progress, samples_per_task, seed) for seed in range(num_tasks)]
    inside = sum(ray.get(refs))
    print(f"  progress actor saw {ray.get(progress.progress.remote()):.0%} of the samples")
    return 4.0 * inside / (num_tasks * samples_per_task)


def main() -> None:
    t0 = time.perf_counter()
    ray.init()
    print(f"local cluster up in {time.perf_counter() - t0:.2f} s: {ray.cluster_resources()}")

    t = time.perf_counter()
    counts = word_count()
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    print(f"word count: {sum(counts.values())} words, top 5 {top} ({time.perf_counter() - t:.2f} s)")

    t = time.perf_counter()
    pi = monte_carlo_pi()
    print(f"Monte Carlo pi ~= {pi:.4f} ({time.perf_counter() - t:.2f} s)")

    ray.shutdown()
    print(f"total {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
