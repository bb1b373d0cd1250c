"""JSON-lines logging."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from agents.common.logging import configure_logging, get_logger

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_event_and_fields_become_one_json_line(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "logs" / "agent.log"
    configure_logging("ras", "INFO", stream=stream, log_file=log_file)
    log = get_logger("ras.servicer")
    log.info("advertisement_accepted", cloud="edge1", cpu=2000, nonce=b"\x01\xff", path=tmp_path)
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["agent"] == "ras"
    assert doc["level"] == "INFO"
    assert doc["logger"] == "edgeferry.ras.servicer"
    assert doc["event"] == "advertisement_accepted"
    assert (doc["cloud"], doc["cpu"], doc["nonce"], doc["path"]) == (
        "edge1",
        2000,
        "01ff",
        str(tmp_path),
    )
    assert doc["ts"].endswith("Z")
    assert json.loads(log_file.read_text().splitlines()[0]) == doc


def test_reserved_field_names_do_not_clobber(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("smf", "DEBUG", stream=stream)
    get_logger("smf").debug("x", event="spoof", level="bad")
    doc = json.loads(stream.getvalue())
    assert doc["event"] == "x" and doc["level"] == "DEBUG"
    assert doc["field_event"] == "spoof" and doc["field_level"] == "bad"


def test_exception_is_included_and_reconfigure_replaces_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("a", stream=first)
    configure_logging("a", stream=second)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("a").exception("failed", step=3)
    assert first.getvalue() == ""
    doc = json.loads(second.getvalue())
    assert doc["step"] == 3 and "RuntimeError: boom" in doc["exception"]
    ours = [h for h in logging.getLogger("edgeferry").handlers if hasattr(h, "_edgeferry_handler")]
    assert len(ours) == 1
