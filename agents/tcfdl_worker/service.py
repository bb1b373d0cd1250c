"""A worker's NATS side: one subscription on its instance subject, answers by reply."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg

from agents.common.logging import get_logger
from agents.security.errors import ProtocolError
from agents.tcfdl_master.client import Subjects, wire
from agents.tcfdl_worker.core import InstanceCore


class WorkerService:
    """Serves `core` on ``tcfdl.inst.<cn>`` (tasks run on the loop's executor), and answers
    bare requests on ``tcfdl.probe.<cn>`` (zeros, at most the request's size: the baseline
    that tells TCFDL's own cost from NATS and the wire)."""

    def __init__(self, nc: Client, core: InstanceCore) -> None:
        self.nc = nc
        self.core = core
        self.name = core.me
        self.refused = 0
        self.log = get_logger("tcfdl_worker")

    async def start(self) -> None:
        """Subscribe and flush (the subscription is live when this returns)."""
        await self.nc.subscribe(Subjects.instance(self.core.me), cb=self._task)
        await self.nc.subscribe(Subjects.probe(self.core.me), cb=self._probe)
        await self.nc.flush()

    async def _probe(self, msg: Msg) -> None:
        if msg.reply:
            await self.nc.publish(msg.reply, bytes(wire.probe_reply_size(msg.headers,
                                                                         len(msg.data))))

    async def _task(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        trace = wire.header(headers, wire.TRACE)
        if not msg.reply:
            return
        if wire.header(headers, wire.QUEUED):
            kept = self.core.kept_answer(wire.header(headers, wire.SCHEME), msg.data)
            if kept is not None:
                await self.nc.publish(msg.reply, kept, headers={wire.TRACE: trace})
                return
        try:
            loop = asyncio.get_running_loop()
            out, phases = await loop.run_in_executor(
                None, self.core.handle, wire.header(headers, wire.SCHEME),
                wire.header(headers, wire.FUNCTION), msg.data)
        except ProtocolError as err:
            self.refused += 1
            self.log.warning("task_refused", reason=str(err))
            await self.nc.publish(msg.reply, b"", headers=wire.error_headers(
                f"instance {self.name}", str(err), trace))
            return
        for phase, ns in phases.items():
            trace = wire.add_trace(trace, "worker", phase, ns)
        await self.nc.publish(msg.reply, out, headers={wire.TRACE: trace})
