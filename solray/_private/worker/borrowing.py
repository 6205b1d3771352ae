"""Distributed reference counting, the owner's and the borrower's sides, and freeing objects.

Part of ``CoreWorker`` (a mixin: the state lives in ``CoreWorker.__init__``). An owner
keeps an object while any process it handed a reference to (a borrower) still holds one;
borrowers tell the owner when they let go, and an owner that sees a borrower's process
die forgets its borrows."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from solray import exceptions
from solray._private import ids
from solray._private.objects.memory_store import Entry
from solray._private.objects.object_ref import ObjectRef
from solray._private.rpc.connection import Connection


class BorrowingMixin:
    """Borrowers, borrowed references and freeing shared memory (see the module doc)."""

    # ------------------------------------------------------------------ borrowing
    async def register_borrowers(self, contained: list, receiver: str) -> None:
        """Before sending refs to ``receiver``, tell each ref's owner it gains a borrower."""
        waits = []
        for oid, owner in contained:
            if owner == self.address:
                e = self.store.get(oid)
                if e is not None:
                    self._add_borrower(e, receiver)
            elif owner != receiver:
                waits.append(self._add_remote_borrower(owner, oid, receiver))
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    def _add_borrower(self, e: Entry, address: str) -> None:
        """Count ``address`` as a borrower of an owned object, and notice if it dies."""
        e.borrowers[address] = e.borrowers.get(address, 0) + 1
        if address not in self._watched_borrowers and address != self.address:
            self._watched_borrowers.add(address)
            self.loop.create_task(self._watch_borrower(address))

    async def _watch_borrower(self, address: str) -> None:
        # A connection to the borrower closes when its process exits (see _on_peer_closed).
        try:
            await self.peer(address)
        except ConnectionError:
            self._borrower_gone(address)

    def _borrower_gone(self, address: str) -> None:
        """A borrower's process exited: it holds no references any more."""
        self._watched_borrowers.discard(address)
        for oid, e in list(self.store.entries.items()):
            if e.owned and address in e.borrowers:
                e.borrowers.pop(address, None)
                self._maybe_free(oid)

    async def _add_remote_borrower(self, owner: str, oid: bytes, receiver: str) -> None:
        conn = await self.peer(owner)
        await conn.request("add_borrower", [oid, receiver])

    def note_borrowed(self, contained: list | None) -> list[ObjectRef]:
        """Record refs whose owners already count this process; return refs pinning them."""
        if not contained:
            return []
        pins = []
        for oid, owner in contained:
            if owner == self.address:
                pins.append(ObjectRef(oid, owner, _worker=self))
                continue
            with self._borrow_lock:  # count and pin together: see _on_refs_zero
                self._borrow_counts[oid] = self._borrow_counts.get(oid, 0) + 1
                self._borrow_owners[oid] = owner
                pins.append(ObjectRef(oid, owner, _worker=self))
        return pins

    def _on_refs_zero(self, oids: list[bytes]) -> None:
        for oid in oids:
            e = self.store.get(oid)
            if e is not None and e.owned:
                self._maybe_free(oid)
                continue
            if e is not None:
                self.store.pop(oid)
            with self._borrow_lock:
                if self.refs.has(oid):
                    continue  # delivered again since the count reached zero
                owner = self._borrow_owners.pop(oid, None)
                delivered = self._borrow_counts.pop(oid, 0)
            if delivered and owner:
                self.loop.create_task(self._release_borrow(owner, oid, delivered))

    async def _release_borrow(self, owner: str, oid: bytes, delivered: int) -> None:
        try:
            conn = await self.peer(owner)
            conn.notify("remove_borrower", [oid, self.address, delivered])
        except ConnectionError:
            pass

    def _maybe_free(self, oid: bytes) -> None:
        e = self.store.get(oid)
        if e is None or not e.owned or e.borrowers or self.refs.has(oid):
            return
        # A pending task's return is dropped too: its reply then finds no entry and frees it.
        self.store.pop(oid)
        hook = self.free_hooks.pop(oid, None)
        if hook is not None and not self.shutting_down:
            hook()
        spec = self.submitter.lineage.get(ids.task_id_of(oid))
        if spec is not None and not any(self.store.get(r) for r in spec.return_refs):
            del self.submitter.lineage[spec.task_id]
        if e.location is not None:
            self.free_shm([(oid, e.location[0])])

    def free_shm(self, oids: list) -> None:
        """Free objects in shared memory: ``[(oid, node_id or None), ...]``."""
        first = not self._pending_frees
        self._pending_frees.extend(oids)
        if first:
            self.loop.call_soon(self._flush_frees)

    def _flush_frees(self) -> None:
        oids, self._pending_frees = self._pending_frees, []
        by_node: dict[str, list] = {}
        for oid, node_id in oids:
            by_node.setdefault(node_id or self.node_id, []).append(oid)
        for node_id, group in by_node.items():
            if node_id == self.node_id:
                if self.daemon is not None:
                    self.daemon.notify("free_objects", group)
            else:
                self.loop.create_task(self._free_remote(node_id, group))

    async def _free_remote(self, node_id: str, oids: list) -> None:
        try:
            conn = await self.daemon_of(node_id)
            conn.notify("free_objects", oids)
        except (ConnectionError, LookupError):
            pass  # the node is gone, and its shared memory with it

    async def daemon_of(self, node_id: str) -> Connection:
        """Connection to the node daemon of ``node_id`` (looked up in the node table)."""
        if node_id == self.node_id:
            return self.daemon
        addr = self.node_addresses.get(node_id)
        if addr is None:
            for n in await self.control.request("get_nodes"):
                self.node_addresses[n["node_id"]] = n["address"]
            addr = self.node_addresses.get(node_id)
        if addr is None:
            raise LookupError(f"unknown node {node_id}")
        return await self.peer(addr)

    def local_path(self, oid: bytes, location: list, owner: str = "") -> str:
        """Path of the object's file on this node, pulling a copy from its node if needed."""
        node_id, path, size = location
        if node_id == self.node_id:
            if os.path.exists(path):
                return path
            try:  # spilled to disk: the daemon restores it
                return self.run_sync(request_on_loop(self.daemon, "restore_object", oid or bytes.fromhex(os.path.basename(path))))
            except Exception as e:
                raise exceptions.ObjectLostError((oid or b"").hex(), owner) from e
        oid = oid or bytes.fromhex(os.path.basename(path))
        try:
            return self.run_sync(request_on_loop(self.daemon, "pull_object", [oid, node_id, size, owner]))
        except Exception as e:
            raise exceptions.ObjectLostError(oid.hex(), owner) from e

    def dep_path(self, location: list, owner: str) -> str:
        """Local path of a task argument in shared memory. If its copy was lost (its node
        died), the owner rebuilds it from lineage and the argument is read from its new
        location; meanwhile this worker's CPU is lent, so the rebuild can run here."""
        oid = bytes.fromhex(os.path.basename(location[1]))
        for _attempt in range(3):
            try:
                return self.local_path(oid, location, owner)
            except exceptions.ObjectLostError:
                if owner == self.address:
                    raise
                with self._blocked():
                    try:
                        location = self.run_sync(self._ask_reconstruct(owner, oid))
                    except Exception:
                        location = None
                if location is None:
                    raise
        raise exceptions.ObjectReconstructionFailedError(oid.hex(), owner)


async def request_on_loop(conn: Connection, method: str, payload: Any = None) -> Any:
    """A request made from a user thread: ``Connection`` is not thread-safe, so the frame
    must be written by the IO loop (``run_sync(request_on_loop(...))``), never by the caller."""
    return await conn.request(method, payload)
