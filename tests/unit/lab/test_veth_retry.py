"""`LabLinks.veth_of` when the engine hands back an exec's exit status without its output (seen
on a busy machine: `lab up` failed with "ifindex " empty): it asks again, and still refuses an
index that no local interface has."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgeferry.errors import OperationFailed
from edgeferry.lab import engine
from edgeferry.lab.config import load_spec
from edgeferry.lab.links import lab as links_lab


class FlakyContainer:
    name = "ef-x-edge1"

    def __init__(self, outputs: list[bytes]) -> None:
        self.outputs, self.calls = outputs, 0

    def exec_run(self, cmd: list[str], demux: bool = False) -> SimpleNamespace:
        assert cmd == ["cat", "/sys/class/net/eth0/iflink"]
        out = self.outputs[min(self.calls, len(self.outputs) - 1)]
        self.calls += 1
        return SimpleNamespace(exit_code=0, output=out)


def test_an_empty_answer_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(links_lab, "local_veth", lambda i: {"17": "veth9f"}[i])
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)
    box = FlakyContainer([b"", b"", b"17\n"])
    assert links_lab.LabLinks(load_spec(), print).veth_of(box) == "veth9f"
    assert box.calls == 3


def test_an_index_no_interface_has_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def nowhere(index: str) -> str:
        raise OperationFailed(f"no local interface has ifindex {index}")

    monkeypatch.setattr(links_lab, "local_veth", nowhere)
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)
    with pytest.raises(OperationFailed, match=r"ef-x-edge1 \(ifindex \)"):
        links_lab.LabLinks(load_spec(), print).veth_of(FlakyContainer([b""]))
