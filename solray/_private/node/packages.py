"""A job's working_dir and py_modules packages, unpacked on this node before its workers start.

Drivers upload their folders to the control service's key-value store under content-hash
URIs (``packaging.upload_local_folders``); a node fetches and unpacks each package once,
however many workers and jobs use it, and hands workers the local folders.
"""

from __future__ import annotations

import asyncio

from solray._private.runtime_env import packaging


class NodePackages:
    def __init__(self, session_dir: str, kv_get):
        self.cache_dir = packaging.cache_dir(session_dir)
        self._kv_get = kv_get  # async (namespace, key) -> bytes | None
        self._unpacked: dict[str, asyncio.Future] = {}  # uri -> local folder

    async def localize(self, runtime_env: dict) -> dict:
        """``runtime_env`` with its package URIs replaced by folders on this node."""
        env = dict(runtime_env)
        if packaging.is_package_uri(env.get("working_dir") or ""):
            env["working_dir"] = await self._folder(env["working_dir"])
        if env.get("py_modules"):
            env["py_modules"] = [
                await self._folder(m) if packaging.is_package_uri(m) else m for m in env["py_modules"]
            ]
        return env

    async def _folder(self, uri: str) -> str:
        fut = self._unpacked.get(uri)
        if fut is None:
            fut = self._unpacked[uri] = asyncio.ensure_future(packaging.fetch_and_unpack(uri, self._kv_get, self.cache_dir))
            # A failure is not remembered: the next worker tries again (the KV may be back).
            fut.add_done_callback(lambda f: self._unpacked.pop(uri, None) if f.exception() else None)
        return await asyncio.shield(fut)
