"""Objects whose copy was lost with its node: rebuilt from lineage, or reported lost.

Part of ``CoreWorker`` (a mixin: the state lives in ``CoreWorker.__init__``)."""

from __future__ import annotations

from solray import exceptions
from solray._private import ids
from solray._private.objects.memory_store import Entry
from solray._private.objects.object_ref import ObjectRef


class RecoveryMixin:
    """Lineage reconstruction of lost objects (see the module doc)."""

    # ------------------------------------------------------------------ lost objects
    def _recover(self, ref: ObjectRef, e: Entry) -> bool:
        """The value's copy is gone: rebuild it (owner) or ask the owner to (borrower)."""
        oid = ref.binary()
        if e.owned:
            if not self.reconstruct(oid):
                return False
            self.wait_ready([ref], 1, None)
            return True
        owner = ref.owner_address()
        try:
            reply = self.run_sync(self._ask_reconstruct(owner, oid))
        except (ConnectionError, OSError):
            # The owner went with the copy (or before it): Ray reports the owner's death.
            raise exceptions.OwnerDiedError(oid.hex(), owner) from None
        except Exception:
            return False
        if reply is None:
            return False
        self.store.set_ready(oid, location=reply)
        return True

    async def _ask_reconstruct(self, owner: str, oid: bytes):
        conn = await self.peer(owner)
        return await conn.request("reconstruct_object", oid)

    def reconstruct(self, oid: bytes) -> bool:
        spec = self.submitter.lineage.get(ids.task_id_of(oid))
        if spec is None or spec.retries_left == 0:
            return False
        if spec.retries_left > 0:
            spec.retries_left -= 1
        spec.attempt += 1
        self.reconstructions += 1
        for r in spec.return_refs:
            self.store.reset(r)
        self.schedule(lambda: self.submitter.resubmit(spec))
        return True

    def _h_object_moved(self, payload) -> bool:
        """A draining node copied one of our objects elsewhere before leaving (autoscaler)."""
        oid, location, old_node = payload
        e = self.store.get(oid)
        if e is None or e.location is None or e.location[0] != old_node:
            return False
        e.location = location
        return True

    async def _h_reconstruct_object(self, oid: bytes):
        e = self.store.get(oid)
        if e is None or not e.owned:
            return None
        if e.ready:
            if e.location is not None and e.location[0] != self.node_id and not await self._node_alive(e.location[0]):
                if not self.reconstruct(oid):
                    return None
            else:
                return e.location
        fut = self.loop.create_future()
        if self.store.add_callback(oid, lambda _e: self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))):
            await fut
        e = self.store.get(oid)
        return e.location if e is not None and not e.is_error else None

    async def _node_alive(self, node_id: str) -> bool:
        nodes = await self.control.request("get_nodes")
        return any(n["node_id"] == node_id and n.get("alive") for n in nodes)
