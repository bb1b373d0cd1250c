"""Client of the composer agent (the controller: experiment runner, CLI).

    composer = ComposerClient(channel)
    reply = composer.run("{seq: [filter, transcode]}", "cooperative-secure", "edge1",
                         "file-000000")
    reply.result_digest, [(p.name, p.ns) for p in reply.phases]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from agents._proto.edgeferry.composer.v1 import composer_service_pb2 as pb
from agents._proto.edgeferry.composer.v1 import composer_service_pb2_grpc as pb_grpc
from agents.common.status import call

DEFAULT_TIMEOUT_S = 120.0
STRATEGY_TO_PB = {
    "non-cooperative": pb.STRATEGY_NON_COOPERATIVE,
    "cooperative": pb.STRATEGY_COOPERATIVE,
    "cooperative-secure": pb.STRATEGY_COOPERATIVE_SECURE,
}


class ComposerClient:
    """Typed calls to the composer agent."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.ComposerServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"composer.{name}",
                    timeout=self.timeout)

    def compose(self, process: str) -> pb.ComposeResponse:
        """Compose and check a process (refused with the reason when unsound)."""
        resp: pb.ComposeResponse = self._call("Compose", pb.ComposeRequest(process=process))
        return resp

    def run(self, process: str, strategy: str, home: str, file_id: str, *,
            request_id: str = "", return_result: bool = False,
            nodes: Sequence[str] = (), indices: Sequence[int] = ()) -> pb.RunResponse:
        """Compose and execute a process over a file with `strategy` (its value string)."""
        if strategy not in STRATEGY_TO_PB:
            raise ValueError(f"strategy {strategy!r}: choose {', '.join(STRATEGY_TO_PB)}")
        resp: pb.RunResponse = self._call("Run", pb.RunRequest(
            process=process, strategy=STRATEGY_TO_PB[strategy], home=home, file_id=file_id,
            request_id=request_id, return_result=return_result, nodes=list(nodes),
            indices=list(indices)))
        return resp

    def offers(self) -> pb.ListOffersResponse:
        """The offers and chi the composer works with."""
        resp: pb.ListOffersResponse = self._call("ListOffers", pb.ListOffersRequest())
        return resp
