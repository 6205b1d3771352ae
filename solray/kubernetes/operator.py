"""The solray operator: kopf handlers that run the reconcile functions of
``solray.kubernetes`` for RayCluster, RayJob and RayService objects.

Run it with ``python -m solray.kubernetes`` (all namespaces) or
``kopf run --standalone -A -m solray.kubernetes.operator``. Every event of a custom
resource, or of a Pod of a cluster, triggers a level-based pass over that object; a timer
resyncs every ``SOLRAY_OPERATOR_RESYNC_S`` seconds (default 30). Handlers never raise for
a bad spec: plans turn those into status and Events.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from solray.kubernetes._internal.client import KubeClient
from solray.kubernetes._internal.common import GROUP, LABEL_CLUSTER
from solray.kubernetes._internal.runtime import OperatorRuntime

RESYNC_S = float(os.environ.get("SOLRAY_OPERATOR_RESYNC_S", "30"))
_KINDS = {"rayclusters": "RayCluster", "rayjobs": "RayJob", "rayservices": "RayService"}


def _login(settings: kopf.OperatorSettings, logger: Any) -> kopf.ConnectionInfo:
    info = (kopf.login_with_service_account(settings=settings, logger=logger)
            or kopf.login_with_kubeconfig(settings=settings, logger=logger))
    if info is None:
        raise kopf.LoginError("no Kubernetes credentials: neither a service account nor a kubeconfig (KUBECONFIG)")
    return info


@kopf.on.login()
def login(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> kopf.ConnectionInfo:
    return _login(settings, logger)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    settings.peering.standalone = True  # one operator replica; no kopf peering CRDs needed
    settings.posting.level = logging.WARNING  # our own Events say what happened
    settings.watching.server_timeout = 60
    memo.runtime = OperatorRuntime(KubeClient.from_connection(_login(settings, logger)))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "runtime", None) is not None:
        await memo.runtime.client.close()


def _register(plural: str) -> None:
    kind = _KINDS[plural]

    @kopf.on.event(GROUP, "v1", plural, id=f"{plural}-event")
    async def on_event(type: str, body: Any, memo: kopf.Memo, **_: Any) -> None:
        if type != "DELETED":  # owned objects go with it (ownerReferences)
            await memo.runtime._safe(kind, body["metadata"].get("namespace") or "default", body["metadata"]["name"])

    @kopf.timer(GROUP, "v1", plural, interval=RESYNC_S, id=f"{plural}-resync")
    async def resync(body: Any, memo: kopf.Memo, **_: Any) -> None:
        await memo.runtime._safe(kind, body["metadata"].get("namespace") or "default", body["metadata"]["name"])


for _plural in _KINDS:
    _register(_plural)


@kopf.on.event("", "v1", "pods", labels={LABEL_CLUSTER: kopf.PRESENT, "app.kubernetes.io/created-by": "kuberay-operator"})
async def on_pod_event(body: Any, memo: kopf.Memo, **_: Any) -> None:
    """A cluster's Pod changed (started, failed, deleted): reconcile its cluster."""
    cluster = body["metadata"]["labels"][LABEL_CLUSTER]
    await memo.runtime._safe("RayCluster", body["metadata"].get("namespace") or "default", cluster)
