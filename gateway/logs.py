"""Logging for `serve`: text or JSON lines, each record tagged with its request's id.

The request id lives in a context variable that `gateway.observability`
sets for the duration of each HTTP request; `RequestIdFilter` copies it onto
every record the handler emits, whichever logger (Tessera's, uvicorn's,
pymongo's) made it. Tasks started while handling a request inherit the id,
so a background refresh a request triggered is logged under that request.

Nothing here logs headers or settings. As a last line of defence, both
formats mask credentials that would otherwise reach a log line: the
password in a `scheme://user:password@host` URI, `Bearer` tokens, and
`key=`/`token=`/`password=` (and similar) query parameters, since an event
beacon may carry its API key in the URL that the access log writes.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

#: The id of the request being handled (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

# The scheme starts where a run of scheme characters starts: without the
# look-behind, a long run of letters with no `://` (a client's string in a
# traceback) was scanned again from each of its positions, quadratic time on the
# event loop (60,000 letters: 4 s). Now each run is scanned once.
_URI_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)"
    r"(?P<user>[^:/@\s\"']*):[^@/\s\"']+@"
)
_BEARER = re.compile(r"(?i)(?P<prefix>bearer\s+)[^\s\"',;]+")
#: Credentials in a query string: `/v1/events?key=...` (a beacon's key), tokens, passwords.
_QUERY_SECRET = re.compile(
    r"(?i)(?P<name>[?&](?:key|writekey|api_?key|token|access_token|secret|password)=)"
    r"[^&\s\"']+"
)


def redact(text: str) -> str:
    """`text` with URI passwords, bearer tokens and credentials in query strings masked."""
    text = _URI_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
    text = _QUERY_SECRET.sub(r"\g<name>***", text)
    return _BEARER.sub(r"\g<prefix>***", text)


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` from the current request (`-` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops one."""
        record.request_id = REQUEST_ID.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the request id and credentials masked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        """One line per record (its traceback aside): line breaks in a message are escaped.

        Messages quote what clients sent; a raw line break there would let a client
        write a line that reads like another record (log forging).
        """
        line = super().formatMessage(record)
        return line.replace("\r", "\\r").replace("\n", "\\n")

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask credentials."""
        return redact(super().format(record))


class JSONLineFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, request_id (+ exc_info)."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # ISO 8601 in UTC: what log pipelines parse without configuration.
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask credentials."""
        return redact(super().format(record))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The fields of `record`, without uvicorn's terminal-coloured copy of the message."""
        super().add_fields(log_data, record, message_dict)
        log_data.pop("color_message", None)


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of `LOG_FORMAT`."""
    return JSONLineFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str, fmt: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record (uvicorn's too) to one handler on `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers propagate to the root handler (serve passes log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return REQUEST_ID.get()
