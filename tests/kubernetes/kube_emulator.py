"""A small in-process Kubernetes API server for the operator's tests.

It speaks enough of the REST and watch API for kopf and the operator: discovery (/api,
/apis), namespaced collections (list with labelSelector, watch streams, create with
generateName), items (get, merge/JSON patch, put, delete with finalizers and owner-reference
cascade), the status subresource, Events, and CRD schema validation of ``ray.io`` objects
(422 as a real server answers). A "kubelet" option marks new Pods Running with an IP.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable

import jsonschema
from aiohttp import web
from kube_protobuf import decode_secret

from solray.kubernetes import crds

CORE = {"pods": "Pod", "services": "Service", "secrets": "Secret", "events": "Event", "namespaces": "Namespace",
        "serviceaccounts": "ServiceAccount"}
GROUPS = {
    "ray.io": {"rayclusters": "RayCluster", "rayjobs": "RayJob", "rayservices": "RayService"},
    "batch": {"jobs": "Job"},
    "apps": {"deployments": "Deployment"},
    "rbac.authorization.k8s.io": {"roles": "Role", "rolebindings": "RoleBinding", "clusterroles": "ClusterRole",
                                  "clusterrolebindings": "ClusterRoleBinding"},
    "apiextensions.k8s.io": {"customresourcedefinitions": "CustomResourceDefinition"},
}
CLUSTER_SCOPED = {"namespaces", "clusterroles", "clusterrolebindings", "customresourcedefinitions"}
STATUS_SUBRESOURCE = {"rayclusters", "rayjobs", "rayservices", "pods", "jobs"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1] if parts else None
        if op["op"] == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if op["op"] == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                parent.pop(last, None)
    return doc


def _matches(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class KubeEmulator:
    """Start with ``with KubeEmulator() as kube:``; ``kube.url`` is the API server's address."""

    def __init__(self, *, kubelet: bool = True, pod_ip_prefix: str = "10.1.0."):
        self.kubelet = kubelet
        self.pod_ip_prefix = pod_ip_prefix
        self.objects: dict[tuple[str, str, str], dict] = {}  # (plural, namespace, name) -> object
        self.requests: list[tuple[str, str]] = []
        self._rv = itertools.count(1)
        self._ip = itertools.count(2)
        self._watchers: list[tuple[str, str | None, asyncio.Queue]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.pod_hook: Callable[[dict], None] | None = None
        # Called with (plural, object) before an object is stored at creation (tests edit it).
        self.create_hook: Callable[[str, dict], None] | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> KubeEmulator:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        def end_watches():
            for _p, _ns, queue in self._watchers:
                queue.put_nowait(None)
        self._loop.call_soon_threadsafe(end_watches)
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api_versions)
        app.router.add_get("/apis", self._groups)
        app.router.add_get("/api/v1", self._resources)
        app.router.add_get("/apis/{group}/v1", self._resources)
        for prefix in ("/api/v1", "/apis/{group}/v1"):
            app.router.add_route("*", prefix + "/{plural}", self._collection)
            app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}", self._collection)
            app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}/{name}", self._item)
            app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}/{name}/status", self._item)
        for prefix in ("/api/v1", "/apis/{group}/v1"):  # cluster-scoped objects (CRDs, ClusterRoles)
            app.router.add_route("*", prefix + "/{plural}/{name}", self._item)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        ready.set()
        self._loop.run_forever()

    # ---- test-side access (thread-safe) ------------------------------------------------
    def call(self, fn, *args):
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def list(self, plural: str, namespace: str = "default", selector: str = "") -> list[dict]:
        return self.call(lambda: [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                                  if p == plural and ns == namespace and _matches(o, selector)])

    def get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        return self.call(lambda: copy.deepcopy(self.objects.get((plural, namespace, name))))

    def create(self, plural: str, obj: dict, namespace: str = "default") -> dict:
        return self.call(self._create, plural, namespace, copy.deepcopy(obj))

    def patch(self, plural: str, name: str, patch: dict, namespace: str = "default", status: bool = False) -> dict:
        def apply():
            obj = self.objects[(plural, namespace, name)]
            new = merge_patch(obj, patch)
            return self._store(plural, namespace, new, "MODIFIED", status_only=status, old=obj)
        return self.call(apply)

    def delete(self, plural: str, name: str, namespace: str = "default") -> None:
        self.call(self._delete, plural, namespace, name)

    # ---- API -----------------------------------------------------------------------------
    async def _groups(self, request):
        groups = [{"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                   "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in GROUPS]
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _version(self, request):
        return web.json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0"})

    async def _api_versions(self, request):
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def _resources(self, request):
        group = request.match_info.get("group")
        kinds = GROUPS.get(group, {}) if group else CORE
        group_version = f"{group}/v1" if group else "v1"
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        res = []
        for plural, kind in kinds.items():
            res.append({"name": plural, "singularName": kind.lower(), "namespaced": plural not in CLUSTER_SCOPED,
                        "kind": kind, "verbs": verbs})
            if plural in STATUS_SUBRESOURCE:
                res.append({"name": f"{plural}/status", "singularName": "", "namespaced": True, "kind": kind,
                            "verbs": ["get", "patch", "update"]})
        return web.json_response({"kind": "APIResourceList", "groupVersion": group_version, "resources": res})

    def _api_version(self, plural: str) -> str:
        for g, kinds in GROUPS.items():
            if plural in kinds:
                return f"{g}/v1"
        return "v1"

    def _kind(self, plural: str) -> str:
        return CORE.get(plural) or next(k[plural] for k in GROUPS.values() if plural in k)

    async def _collection(self, request):
        plural, ns = request.match_info["plural"], request.match_info.get("ns")
        self.requests.append((request.method, request.path))
        if request.method == "POST":
            try:
                return web.json_response(self._create(plural, ns, await _body(request)), status=201)
            except _ApiError as e:
                return e.response()
        if request.query.get("watch") == "true":
            return await self._watch(request, plural, ns)
        selector = request.query.get("labelSelector", "")
        items = [copy.deepcopy(o) for (p, ons, _), o in sorted(self.objects.items())
                 if p == plural and (ns is None or ons == ns) and _matches(o, selector)]
        return web.json_response({"kind": f"{self._kind(plural)}List", "apiVersion": self._api_version(plural),
                                  "metadata": {"resourceVersion": str(next(self._rv))}, "items": items})

    async def _watch(self, request, plural, ns):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        entry = (plural, ns, queue)
        self._watchers.append(entry)
        selector = request.query.get("labelSelector", "")
        deadline = time.monotonic() + float(request.query.get("timeoutSeconds") or 300)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), min(left, 0.5))
                except TimeoutError:
                    continue
                if item is None:  # the server is stopping
                    break
                kind, obj = item
                if _matches(obj, selector):
                    await resp.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.remove(entry)
        return resp

    async def _item(self, request):
        plural, ns, name = request.match_info["plural"], request.match_info.get("ns"), request.match_info["name"]
        status_only = request.path.endswith("/status")
        self.requests.append((request.method, request.path))
        key = (plural, ns, name)
        obj = self.objects.get(key)
        if obj is None and request.method != "PUT":
            return _ApiError(404, "NotFound", f'{plural} "{name}" not found').response()
        try:
            if request.method == "GET":
                return web.json_response(obj)
            if request.method == "DELETE":
                return web.json_response(self._delete(plural, ns, name))
            body = await _body(request)
            expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if expected and expected != obj["metadata"]["resourceVersion"]:
                raise _ApiError(409, "Conflict", f'the object has been modified (resourceVersion {expected} is stale)')
            if request.method == "PATCH":
                ctype = request.headers.get("Content-Type", "")
                try:
                    new = json_patch(obj, body) if "json-patch" in ctype else merge_patch(obj, body)
                except (ValueError, KeyError, IndexError) as e:
                    raise _ApiError(422, "Invalid", str(e)) from e
            else:
                new = body
            return web.json_response(self._store(plural, ns, new, "MODIFIED", status_only=status_only, old=obj))
        except _ApiError as e:
            return e.response()

    # ---- storage -----------------------------------------------------------------------
    def _validate(self, plural: str, obj: dict) -> None:
        kind = GROUPS["ray.io"].get(plural)
        if kind is None:
            return
        try:
            jsonschema.validate(obj, crds.schema_of(kind))
        except jsonschema.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path)
            raise _ApiError(422, "Invalid", f"{kind}.ray.io \"{obj['metadata'].get('name')}\" is invalid: {where}: {e.message}") from e

    def _create(self, plural: str, ns: str, obj: dict) -> dict:
        md = obj.setdefault("metadata", {})
        if not md.get("name"):
            if not md.get("generateName"):
                raise _ApiError(422, "Invalid", "metadata.name or generateName is required")
            md["name"] = md["generateName"] + secrets.token_hex(3)[:5]
        if (plural, ns, md["name"]) in self.objects:
            raise _ApiError(409, "AlreadyExists", f'{plural} "{md["name"]}" already exists')
        self._validate(plural, obj)
        if self.create_hook is not None:
            self.create_hook(plural, obj)
        md.update(namespace=ns, uid=secrets.token_hex(8), creationTimestamp=_now(), generation=1)
        obj.setdefault("apiVersion", self._api_version(plural))
        obj.setdefault("kind", self._kind(plural))
        if plural == "pods":
            obj["status"] = {"phase": "Pending"}
        if plural == "customresourcedefinitions":  # helm waits for CRDs to be established
            obj["status"] = {"conditions": [{"type": t, "status": "True"} for t in ("NamesAccepted", "Established")]}
        if plural == "services":
            obj.setdefault("spec", {})["clusterIP"] = f"10.96.0.{next(self._ip)}"
        stored = self._store(plural, ns, obj, "ADDED", created=True)
        owners = {ref.get("uid") for ref in md.get("ownerReferences") or []}
        if owners and not any(o["metadata"]["uid"] in owners for o in self.objects.values()):
            # Kubernetes' garbage collector removes a dependent whose owners are all gone (an
            # operator's reconcile can create children of an owner deleted meanwhile).
            self._delete(plural, ns, md["name"])
            return stored
        if plural == "pods" and self.kubelet:
            self._loop.call_later(0.05, self._run_pod, ns, md["name"])
        return stored

    def _run_pod(self, ns: str, name: str) -> None:
        obj = self.objects.get(("pods", ns, name))
        if obj is None or obj["status"].get("phase") != "Pending":
            return
        status = {"phase": "Running", "podIP": f"{self.pod_ip_prefix}{next(self._ip)}",
                  "containerStatuses": [{"name": c["name"], "ready": True} for c in obj["spec"]["containers"]]}
        self._store("pods", ns, {**obj, "status": status}, "MODIFIED", status_only=True, old=obj)
        if self.pod_hook:
            self.pod_hook(self.objects[("pods", ns, name)])

    def _store(self, plural, ns, new, event, *, status_only=False, created=False, old=None) -> dict:
        new = copy.deepcopy(new)
        if old is not None:
            if status_only:
                new = {**copy.deepcopy(old), "status": new.get("status")}
            elif plural in STATUS_SUBRESOURCE and plural != "pods":
                new["status"] = copy.deepcopy(old.get("status"))  # the main resource ignores status
            md = new["metadata"]
            for k in ("uid", "creationTimestamp", "namespace", "name", "generation"):
                md[k] = old["metadata"].get(k)
            if not status_only and new.get("spec") != old.get("spec"):
                md["generation"] = (old["metadata"].get("generation") or 1) + 1
                self._validate(plural, new)
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        key = (plural, ns, new["metadata"]["name"])
        if old is not None and new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.objects.pop(key, None)
            self._notify(plural, ns, "DELETED", new)
            self._cascade(new)
            return new
        self.objects[key] = new
        self._notify(plural, ns, event, new)
        return copy.deepcopy(new)

    def _delete(self, plural: str, ns: str, name: str) -> dict:
        obj = self.objects.get((plural, ns, name))
        if obj is None:
            raise _ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                return self._store(plural, ns, merge_patch(obj, {"metadata": {"deletionTimestamp": _now()}}), "MODIFIED", old=obj)
            return obj
        del self.objects[(plural, ns, name)]
        self._notify(plural, ns, "DELETED", obj)
        self._cascade(obj)
        return {"kind": "Status", "status": "Success"}

    def _cascade(self, owner: dict) -> None:
        """Kubernetes' garbage collector: objects owned by ``owner`` go with it."""
        uid = owner["metadata"]["uid"]
        for (plural, ns, name), obj in list(self.objects.items()):
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                if (plural, ns, name) in self.objects:
                    self._delete(plural, ns, name)

    def _notify(self, plural: str, ns: str, event: str, obj: dict) -> None:
        for wplural, wns, queue in self._watchers:
            if wplural == plural and (wns is None or wns == ns):
                queue.put_nowait((event, copy.deepcopy(obj)))


async def _body(request) -> dict:
    if "protobuf" in request.headers.get("Content-Type", ""):
        try:
            return decode_secret(await request.read())
        except ValueError as e:
            raise _ApiError(415, "UnsupportedMediaType", str(e)) from e
    return await request.json()


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self):
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": self.message,
                                  "reason": self.reason, "code": self.code}, status=self.code)
