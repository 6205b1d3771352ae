"""``EnvRunnerGroup``: the EnvRunner actors of an algorithm (or one local runner), and what
happens when one fails.

Weights reach the actors as one object-store ref per update (``solray.put`` once, every
runner resolves the same NumPy buffers); sample batches come back as NumPy dicts through the
object store. A runner whose ``sample`` raises (its env crashed) or whose process died is
logged with the remote traceback and, with ``restart_failed_env_runners``, replaced by a
fresh actor; the iteration goes on with the other runners' samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import solray
from solray.exceptions import RayError

logger = logging.getLogger("solray.rllib")


class EnvRunnerGroup:
    def __init__(self, config: Any, runner_cls: type, env_creator: Callable, module_specs: dict,
                 postprocess: Callable | None, num_runners: int, first_index: int = 1,
                 bundles: Any = None, on_restart: Callable[[EnvRunnerGroup, list[int]], None] | None = None) -> None:
        self.config = config
        self._args = (env_creator, module_specs, postprocess)
        self._runner_cls = runner_cls
        self._first_index = first_index
        self.num_runners = num_runners
        self.local_env_runner = None
        self._remote: dict[int, Any] = {}
        self._placement: dict[int, dict] = {}  # actor options per runner index (its bundle in Tune)
        self.num_restarts = 0
        self._on_restart = on_restart
        self.failures: list[str] = []
        # asynchronous requests (submit/fetch_ready): ref -> (runner index, weights version)
        self._in_flight: dict[Any, tuple[int, int]] = {}
        self._local_ready: list[tuple[dict, int]] = []
        if num_runners == 0:
            self.local_env_runner = runner_cls(config, 0, *self._args, num_workers=0)
        else:
            self._actor_cls = solray.remote(num_cpus=config.num_cpus_per_env_runner,
                                            num_gpus=config.num_gpus_per_env_runner)(runner_cls)
            for index in range(first_index, first_index + num_runners):
                self._placement[index] = bundles.options() if bundles is not None else {}
                self._remote[index] = self._start(index)
            self._wait_ready()

    def _start(self, index: int) -> Any:
        return self._actor_cls.options(**self._placement[index]).remote(
            self.config, index, *self._args, num_workers=self.num_runners)

    def _wait_ready(self) -> None:
        """Construct every actor now, so a bad env or module fails ``build_algo()``, not ``train()``."""
        for ref in [actor.ping.remote() for actor in self._remote.values()]:
            try:
                solray.get(ref)
            except RayError:
                self.stop()
                raise

    @property
    def healthy_count(self) -> int:
        return len(self._remote) if self.local_env_runner is None else 1

    def call(self, method: str, weights: Any, **kwargs: Any) -> list[dict]:
        """``method`` on every runner (the local one gets the NumPy weights, actors the ref)."""
        if self.local_env_runner is not None:
            local_weights = solray.get(weights) if isinstance(weights, solray.ObjectRef) else weights
            return [getattr(self.local_env_runner, method)(weights=local_weights, **kwargs)]
        for _ in range(max(1, self.config.num_consecutive_env_runner_failures_tolerance)):
            outputs = self.gather(self.call_each(method, weights, **kwargs))
            if outputs:
                return outputs
        raise RuntimeError(f"Every EnvRunner failed {self.config.num_consecutive_env_runner_failures_tolerance} "
                           f"times in a row; last error:\n{self.failures[-1] if self.failures else '?'}")

    def call_each(self, method: str, weights: Any, indexes: Any = None, **kwargs: Any) -> dict[int, Any]:
        """Start ``method`` once on every runner actor (or those in ``indexes``) without waiting."""
        return {i: getattr(r, method).remote(weights=weights, **kwargs) for i, r in self._remote.items()
                if indexes is None or i in indexes}

    def gather(self, refs: dict[int, Any]) -> list[dict]:
        """The outputs of ``call_each``; a runner that failed is restarted (or not) and left out."""
        outputs = []
        for index, ref in refs.items():
            try:
                # No timeout: a slow runner on a busy machine is not a failed one.
                outputs.append(solray.get(ref))
            except RayError as e:
                self._on_failure(index, e)
        return outputs

    # --- asynchronous requests (IMPALA, APPO) -------------------------------------------------
    def submit(self, method: str, weights: Any, version: int, **kwargs: Any) -> None:
        """Top every runner up to ``max_requests_in_flight_per_env_runner`` requests of ``method``
        (sampling with weights ``version``); collect them with :meth:`fetch_ready`.

        Without actors the local runner runs one request now and its output waits for
        :meth:`fetch_ready`."""
        if self.local_env_runner is not None:
            if not self._local_ready:
                local_weights = solray.get(weights) if isinstance(weights, solray.ObjectRef) else weights
                output = getattr(self.local_env_runner, method)(weights=local_weights, version=version, **kwargs)
                self._local_ready.append((output, version))
            return
        busy: dict[int, int] = {}
        for index, _ in self._in_flight.values():
            busy[index] = busy.get(index, 0) + 1
        limit = self.config.max_requests_in_flight_per_env_runner
        for index, actor in self._remote.items():
            for _ in range(limit - busy.get(index, 0)):
                ref = getattr(actor, method).remote(weights=weights, version=version, **kwargs)
                self._in_flight[ref] = (index, version)

    @property
    def num_in_flight(self) -> int:
        return len(self._in_flight) + len(self._local_ready)

    def fetch_ready(self, timeout: float | None = None) -> list[tuple[dict, int]]:
        """``(output, weights version)`` of every finished request, waiting up to ``timeout``
        seconds for the first. A request that raised is handled as in :meth:`call` (the runner
        restarted or dropped, with its other requests)."""
        if self.local_env_runner is not None:
            ready, self._local_ready = self._local_ready, []
            return ready
        if not self._in_flight:
            if not self._remote:
                raise RuntimeError(f"No EnvRunner left to sample with; last error:\n"
                                   f"{self.failures[-1] if self.failures else '?'}")
            return []
        refs = list(self._in_flight)
        if not solray.wait(refs, num_returns=1, timeout=timeout)[0]:
            return []
        ready = set(solray.wait(refs, num_returns=len(refs), timeout=0)[0])
        outputs = []
        for ref in refs:  # submission order: outputs come back in a stable order
            if ref not in ready or ref not in self._in_flight:
                continue
            index, version = self._in_flight.pop(ref)
            try:
                outputs.append((solray.get(ref), version))
            except RayError as e:
                self._on_failure(index, e)
                # the failed actor's other requests can only fail too
                for other in [r for r, (i, _) in self._in_flight.items() if i == index]:
                    del self._in_flight[other]
        return outputs

    def _on_failure(self, index: int, error: RayError) -> None:
        text = str(error)
        self.failures.append(text)
        restart = self.config.restart_failed_env_runners
        if not restart and not self.config.ignore_env_runner_failures:
            raise error
        if restart and self.num_restarts >= self.config.max_num_env_runner_restarts:
            raise RuntimeError(f"EnvRunner {index} failed after {self.num_restarts} restarts "
                               f"(max_num_env_runner_restarts):\n{text}") from None
        logger.error("EnvRunner %d failed; %s.\n%s", index,
                     "restarting it (restart_failed_env_runners=True)" if restart else "ignoring it", text)
        old = self._remote.pop(index)
        try:
            solray.kill(old)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        if restart:
            self._remote[index] = self._start(index)
            self.num_restarts += 1
            if self._on_restart is not None:
                self._on_restart(self, [index])

    def foreach_env_runner(self, fn: Callable[[Any], Any]) -> list:
        if self.local_env_runner is not None:
            return [fn(self.local_env_runner)]
        return solray.get([r.apply.remote(fn) for r in self._remote.values()])

    def actors(self) -> list:
        return list(self._remote.values())

    def stop(self) -> None:
        if self.local_env_runner is not None:
            self.local_env_runner.stop()
        for actor in self._remote.values():
            try:
                solray.kill(actor)
            except Exception:  # noqa: BLE001 - stopping is best effort
                pass
        self._remote.clear()
        self._in_flight.clear()
        self._local_ready.clear()
