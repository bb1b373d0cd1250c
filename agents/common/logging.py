"""Structured logs: one JSON object per line with time, level, agent, event and fields.

    log = get_logger("ras.servicer")
    log.info("advertisement_accepted", cloud="edge1", cpu_millicores=2000)

prints (after ``configure_logging("ras")``)::

    {"ts": "2026-11-21T22:50:01.123456Z", "level": "INFO", "agent": "ras",
     "logger": "ras.servicer", "event": "advertisement_accepted", "cloud": "edge1", ...}

Never pass secrets (keys, session keys, raw capabilities) as fields.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from pathlib import Path
from typing import IO, Any

_FIELDS_ATTR = "edgeferry_fields"
_RESERVED = ("ts", "level", "agent", "logger", "event")
_HANDLER_MARK = "_edgeferry_handler"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class JsonLineFormatter(logging.Formatter):
    """Render a record as one JSON line; extra fields come from `EventLogger` calls."""

    def __init__(self, agent: str) -> None:
        super().__init__()
        self.agent = agent

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.timezone.utc)
        doc: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "agent": self.agent,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, _FIELDS_ATTR, None) or {}
        for key, value in fields.items():
            doc[f"field_{key}" if key in _RESERVED else key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=_jsonable, sort_keys=False)


class EventLogger:
    """A thin wrapper: ``log.info("event_name", key=value, ...)``."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, level: int, event: str, /, exc_info: bool = False, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={_FIELDS_ATTR: fields}, exc_info=exc_info)

    def debug(self, event: str, /, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """Log at ERROR with the current exception's traceback."""
        self.log(logging.ERROR, event, exc_info=True, **fields)


def get_logger(name: str) -> EventLogger:
    """An EventLogger under the ``edgeferry`` logger hierarchy."""
    full = name if name.startswith("edgeferry") else f"edgeferry.{name}"
    return EventLogger(logging.getLogger(full))


def configure_logging(
    agent: str,
    level: str = "INFO",
    *,
    stream: IO[str] | None = None,
    log_file: Path | None = None,
) -> None:
    """Send JSON lines for the ``edgeferry`` and ``grpc`` loggers to stderr (and ``log_file``).

    Calling it again replaces the handlers it installed before (idempotent).
    """
    formatter = JsonLineFormatter(agent)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for name in ("edgeferry", "grpc"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            setattr(handler, _HANDLER_MARK, True)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.setLevel(level if name == "edgeferry" else max(logging.WARNING, _level(level)))
        logger.propagate = False


def _level(level: str) -> int:
    value = logging.getLevelName(level)
    return value if isinstance(value, int) else logging.INFO
