"""The autoscaler sidecar of a RayCluster's head Pod (``enableInTreeAutoscaling: true``).

Reads its cluster from ``RAY_CLUSTER_NAME``/``RAY_CLUSTER_NAMESPACE``, talks to the head in
the same Pod (127.0.0.1:6379, token from ``SOLRAY_TOKEN``) and to the API server with the
Pod's service account. The node types are re-read from the RayCluster on every pass, so
edits to the worker groups take effect without a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from solray.autoscaler._internal.kubernetes_provider import (
    KubernetesNodeProvider,
    config_from_raycluster,
)
from solray.autoscaler._internal.monitor import Monitor
from solray.kubernetes._internal.client import KubeClient


def client_factory() -> KubeClient:
    import kopf

    settings = kopf.OperatorSettings()
    info = (kopf.login_with_service_account(settings=settings, logger=logging.getLogger(__name__))
            or kopf.login_with_kubeconfig(settings=settings, logger=logging.getLogger(__name__)))
    if info is None:
        raise RuntimeError("no Kubernetes credentials (service account or KUBECONFIG)")
    return KubeClient.from_connection(info)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    name = os.environ["RAY_CLUSTER_NAME"]
    namespace = os.environ.get("RAY_CLUSTER_NAMESPACE", "default")
    control = os.environ.get("SOLRAY_HEAD_ADDRESS", "127.0.0.1:6379")
    provider = KubernetesNodeProvider(name, namespace, client_factory)
    monitor = Monitor(config_from_raycluster(provider.cluster()), provider, control, os.environ["SOLRAY_TOKEN"],
                      log=lambda line: print(line, flush=True))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print(f"autoscaler: RayCluster {namespace}/{name}, head {control}", flush=True)
    while not stop:
        try:
            monitor.set_config(config_from_raycluster(provider.cluster()))
            monitor.tick()
        except Exception as e:  # the head restarting, the API server busy: try again
            print(f"autoscaler: pass failed: {e}", flush=True)
        time.sleep(monitor.interval_s)


if __name__ == "__main__":
    main()
