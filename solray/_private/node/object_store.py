"""This node's shared-memory objects: accounting, recycling freed files, spilling to disk,
and transfers to and from other nodes.

Part of ``NodeDaemon`` (a mixin: the state lives in ``NodeDaemon.__init__``). Every object's
bytes are accounted, so a full store fails ``put`` with a clear error instead of the kernel
killing someone."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil

from solray._private import config
from solray._private.node.transfer import fetch as transfer_fetch
from solray._private.rpc.connection import Connection, connect

logger = logging.getLogger(__name__)


class ObjectStoreMixin:
    """Objects in this node's shared memory (see the module doc)."""

    # ------------------------------------------------------------------ objects
    def _h_alloc_object(self, conn: Connection | None, p: list) -> str:
        oid, size, owner = p
        if oid in self.objects:
            return "ok"
        if size > self.object_store_memory:
            return (
                f"Failed to put object {oid.hex()} of {size / 2**20:.1f} MiB into the object store: "
                f"it is larger than the whole store ({self.object_store_memory / 2**20:.1f} MiB). "
                "Start the cluster with a larger object_store_memory."
            )
        # Only writers over RPC can take a pooled file; the daemon's own copies write fresh.
        reused = conn is not None and self._reuse_pooled(oid, size)
        if self.object_bytes + self.pool_bytes + size > self.object_store_memory:
            self._drop_pool(self.object_store_memory - size - self.object_bytes)
        if self.object_bytes + size > self.object_store_memory:
            self._spill_until(self.object_store_memory - size, keep=oid)
        if self.object_bytes + size > self.object_store_memory:
            if reused:
                os.unlink(self._path(oid) + ".w")
            return (
                f"Failed to put object {oid.hex()} of {size / 2**20:.1f} MiB into the object "
                f"store: {self.object_bytes / 2**20:.1f} MiB of {self.object_store_memory / 2**20:.1f} "
                "MiB are in use by objects that are still referenced and could not be spilled. "
                "Free references (del the ObjectRefs) or start the cluster with a larger "
                "object_store_memory."
            )
        self.objects[oid] = (size, owner)
        self.object_bytes += size
        return "reuse" if reused else "ok"

    # ------------------------------------------------------------------ recycling
    def _reuse_pooled(self, oid: bytes, size: int) -> bool:
        """Hand a pooled file of a fitting size to the writer of ``oid`` (as ``<oid>.w``)."""
        if size < config.RECYCLE_MIN_BYTES:
            return False
        best = None
        for i, (psize, _path) in enumerate(self.pool):
            if size <= psize <= 2 * size and (best is None or psize < self.pool[best][0]):
                best = i
        if best is None:
            return False
        psize, path = self.pool.pop(best)
        self.pool_bytes -= psize
        os.rename(path, self._path(oid) + ".w")
        return True

    def _drop_pool(self, target_bytes: int) -> None:
        while self.pool and self.pool_bytes > max(0, target_bytes):
            psize, path = self.pool.pop(0)
            self.pool_bytes -= psize
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _recycle(self, oid: bytes, size: int) -> bool:
        """Keep a freed file for reuse if nobody on this node still maps it."""
        if size < config.RECYCLE_MIN_BYTES or self.pool_bytes + size > self.object_store_memory * config.RECYCLE_POOL_FRACTION:
            return False
        path = self._path(oid)
        for info in self.clients.values():
            if _maps_for_reading(info["pid"], path):
                return False
        dst = os.path.join(self.pool_dir, oid.hex())
        try:
            os.rename(path, dst)
        except OSError:
            return False
        self.pool.append((size, dst))
        self.pool_bytes += size
        return True

    # ------------------------------------------------------------------ spilling
    def _spill_until(self, target_bytes: int, keep: bytes | None = None) -> None:
        """Move the oldest complete objects to disk until the store holds ``target_bytes``."""
        os.makedirs(self.spill_dir, exist_ok=True)
        for oid in list(self.objects):
            if self.object_bytes <= target_bytes:
                return
            if oid == keep or oid in self._pulls:
                continue
            src = self._path(oid)
            if not os.path.exists(src):  # still being written
                continue
            size, owner = self.objects[oid]
            dst = os.path.join(self.spill_dir, oid.hex())
            try:
                shutil.copyfile(src, dst)
            except OSError as e:
                logger.error("spilling %s failed: %s", oid.hex(), e)
                return
            os.unlink(src)
            del self.objects[oid]
            self.object_bytes -= size
            self.spilled[oid] = (size, owner, dst)
            self.spilled_bytes_total += size

    def _h_restore_object(self, conn: Connection | None, oid: bytes) -> str:
        """Bring a spilled object back into shared memory; return its path."""
        path = self._path(oid)
        if oid in self.objects and os.path.exists(path):
            return path
        entry = self.spilled.get(oid)
        if entry is None:
            raise FileNotFoundError(f"object {oid.hex()} is neither in shared memory nor spilled on this node")
        size, owner, spill_path = entry
        verdict = self._h_alloc_object(None, [oid, size, owner])
        if verdict != "ok":
            raise MemoryError(verdict)
        tmp = path + ".w"
        shutil.copyfile(spill_path, tmp)
        os.rename(tmp, path)
        del self.spilled[oid]
        os.unlink(spill_path)
        self.restored_bytes_total += size
        return path

    def _h_free_objects(self, conn: Connection | None, oids: list) -> None:
        forward: dict[str, list] = {}
        for oid in oids:
            for addr in self.pulled_by.pop(oid, ()):
                forward.setdefault(addr, []).append(oid)
            spilled = self.spilled.pop(oid, None)
            if spilled is not None:
                try:
                    os.unlink(spilled[2])
                except FileNotFoundError:
                    pass
            entry = self.objects.pop(oid, None)
            if entry is None:
                continue
            self.object_bytes -= entry[0]
            if self._recycle(oid, entry[0]):
                continue
            try:
                os.unlink(os.path.join(self.shm_dir, oid.hex()))
            except FileNotFoundError:
                pass
        if forward:
            asyncio.get_running_loop().create_task(self._forward_frees(forward))

    async def _forward_frees(self, forward: dict[str, list]) -> None:
        """Copies pulled by other nodes go when the primary copy goes."""
        for addr, oids in forward.items():
            try:
                host, port = addr.rsplit(":", 1)
                c = await connect(host, int(port), self.token, name="free")
                c.notify("free_objects", oids)
                await asyncio.sleep(0)
                c.close()
            except OSError:
                pass

    # ------------------------------------------------------------------ transfers
    def _path(self, oid: bytes) -> str:
        return os.path.join(self.shm_dir, oid.hex())

    async def _h_pull_object(self, conn: Connection, p: list) -> str:
        """Make a local copy of an object held by another node; return its local path."""
        oid, src_node, size, owner = p
        path = self._path(oid)
        if oid in self.objects and oid not in self._pulls:
            return path
        pending = self._pulls.get(oid)
        if pending is None:
            pending = self._pulls[oid] = asyncio.get_running_loop().create_future()
            try:
                await self._pull(oid, src_node, size, owner, path)
                pending.set_result(path)
            except BaseException as e:
                pending.set_exception(e)
                pending.exception()
                raise
            finally:
                self._pulls.pop(oid, None)
        return await asyncio.shield(pending)

    async def _pull(self, oid: bytes, src_node: str, size: int, owner: str, path: str) -> None:
        node = self.cluster_view.get(src_node)
        if node is None or not node.get("alive"):
            raise LookupError(f"object {oid.hex()} is on node {src_node}, which is not alive")
        verdict = self._h_alloc_object(conn=None, p=[oid, size, owner])
        if verdict != "ok":
            raise MemoryError(verdict)
        host, port = node["address"].rsplit(":", 1)
        try:
            # The source readies the object (restoring it if spilled) and names its transfer
            # port; the bytes then flow socket-to-mapping on a thread (transfer.py).
            src = await connect(host, int(port), self.token, name=f"transfer {src_node[:8]}")
            try:
                tport = await src.request("prepare_send", [oid, self.address])
            finally:
                src.close()
            await asyncio.get_running_loop().run_in_executor(
                None, transfer_fetch, host, tport, self.token, oid, size, path + ".part"
            )
        except BaseException:
            self._h_free_objects(None, [oid])
            try:
                os.unlink(path + ".part")
            except FileNotFoundError:
                pass
            raise
        os.rename(path + ".part", path)
        self.pulls_total += 1
        self.pulled_bytes_total += size

    def _h_prepare_send(self, conn: Connection, p: list) -> int:
        """Another node is about to pull an object: have it in shared memory, remember the
        copy (it goes when the object goes), and name the port that streams it."""
        oid, requester = p
        if oid not in self.objects:
            self._h_restore_object(None, oid)
        self.pulled_by.setdefault(oid, set()).add(requester)
        return self.transfer.port

    def _free_owned_by(self, owner: str) -> None:
        self._h_free_objects(None, [oid for oid, (_s, o) in self.objects.items() if o == owner])


def _maps_for_reading(pid: int, path: str) -> bool:
    """Whether process ``pid`` maps ``path`` read-only: a reader that would see a recycled
    file change under it. Writable mappings are writers' own (kept to refill the file)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip("\n").endswith(path) and line.split(None, 2)[1][1] != "w":
                    return True
    except OSError:
        pass
    return False
