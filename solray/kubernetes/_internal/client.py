"""A small async client for the Kubernetes REST API (aiohttp, which kopf already uses).

Only what the operator needs: list by label, get, create, delete, merge-patch (also of the
status subresource) and Events. Credentials come from kopf's login helpers (service account
in a Pod, else kubeconfig).
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

# kind -> (API prefix, plural)
PATHS = {
    "Pod": ("/api/v1", "pods"),
    "Service": ("/api/v1", "services"),
    "Secret": ("/api/v1", "secrets"),
    "Event": ("/api/v1", "events"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "RayCluster": ("/apis/ray.io/v1", "rayclusters"),
    "RayJob": ("/apis/ray.io/v1", "rayjobs"),
    "RayService": ("/apis/ray.io/v1", "rayservices"),
}


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"Kubernetes API error {status}: {message}")
        self.status = status
        self.body = body


class KubeClient:
    def __init__(self, server: str, *, token: str | None = None, ca_path: str | None = None, ca_data: str | None = None,
                 insecure: bool = False, default_namespace: str = "default"):
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.default_namespace = default_namespace
        self._ssl: Any = None
        if self.server.startswith("https"):
            if insecure:
                self._ssl = False
            else:
                self._ssl = ssl.create_default_context(cafile=ca_path, cadata=ca_data if isinstance(ca_data, str) else None)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_connection(cls, info: Any) -> KubeClient:
        """From a ``kopf.ConnectionInfo``."""
        ca_data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        return cls(info.server, token=info.token, ca_path=info.ca_path, ca_data=ca_data, insecure=bool(info.insecure),
                   default_namespace=info.default_namespace or "default")

    def _url(self, kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        prefix, plural = PATHS[kind]
        url = f"{self.server}{prefix}/namespaces/{namespace}/{plural}"
        if name:
            url += f"/{name}"
        if sub:
            url += f"/{sub}"
        return url

    async def _call(self, method: str, url: str, *, json: Any = None, params: dict | None = None, content_type: str | None = None) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self.headers)
        headers = {"Content-Type": content_type} if content_type else None
        async with self._session.request(method, url, json=json, params=params, headers=headers, ssl=self._ssl) as rsp:
            body = await rsp.json(content_type=None) if rsp.content_length != 0 else None
            if rsp.status >= 400:
                raise ApiError(rsp.status, body)
            return body

    async def list(self, kind: str, namespace: str, selector: dict[str, str] | None = None) -> list[dict]:
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())} if selector else None
        body = await self._call("GET", self._url(kind, namespace), params=params)
        return body.get("items") or []

    async def get(self, kind: str, namespace: str, name: str) -> dict | None:
        try:
            return await self._call("GET", self._url(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, obj: dict) -> dict:
        ns = obj["metadata"].get("namespace") or self.default_namespace
        return await self._call("POST", self._url(obj["kind"], ns), json=obj)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self._call("DELETE", self._url(kind, namespace, name), json={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status != 404:  # already gone is what we wanted
                raise

    async def patch(self, kind: str, namespace: str, name: str, patch: dict, *, status: bool = False) -> dict:
        return await self._call("PATCH", self._url(kind, namespace, name, "status" if status else None),
                                json=patch, content_type="application/merge-patch+json")

    async def replace(self, obj: dict) -> dict:
        md = obj["metadata"]
        return await self._call("PUT", self._url(obj["kind"], md.get("namespace") or self.default_namespace, md["name"]), json=obj)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
