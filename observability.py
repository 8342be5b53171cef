"""Logs as JSON lines and Prometheus metrics: what every layer may report, and nothing personal.

Importable by every layer, like settings.py. Log records carry only what an operator needs to
follow a request (its id, route, operation name, status, duration); the metrics carry route
templates, operation names and error codes, never a value a caller sent or a person's data.

With ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty directory, before the processes start), the
processes of ``uvicorn --workers N`` write their values there and any of them answers
``/metrics`` for all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "ocis_requests_total", "HTTP requests answered", ["route", "operation", "status"]
)
LATENCY = Histogram(
    "ocis_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GRAPHQL_ERRORS = Counter("ocis_graphql_errors_total", "GraphQL errors answered, by code", ["code"])
RATE_LIMITED = Counter(
    "ocis_rate_limit_refusals_total", "Requests refused by a rate limit", ["limit"]
)
AUDIT_APPENDS = Counter("ocis_audit_appends_total", "Audit records appended")
AUDIT_RETRIES = Counter(
    "ocis_audit_append_retries_total", "Audit appends retried after a collision"
)
MAIL_QUEUE_DEPTH = Gauge(
    "ocis_mail_queue_depth",
    "Notice mail due or being sent",
    multiprocess_mode="mostrecent",
)
MAIL_QUEUE_OLDEST_SECONDS = Gauge(
    "ocis_mail_queue_oldest_seconds",
    "Age of the oldest notice mail still due",
    multiprocess_mode="mostrecent",
)
JOB_QUEUE_DEPTH = Gauge(
    "ocis_job_queue_depth",
    "Durable jobs queued or running",
    multiprocess_mode="mostrecent",
)
JOB_QUEUE_OLDEST_SECONDS = Gauge(
    "ocis_job_queue_oldest_seconds",
    "How long the oldest due job has waited to be claimed",
    multiprocess_mode="mostrecent",
)
# P09: usage events refused (no statistics consent, an objection, a restriction); no label
# names a person or a feature.
USAGE_DROPPED = Counter(
    "ocis_usage_events_dropped_total",
    "Usage events dropped because their sender may not be counted",
)
JOBS_FINISHED = Counter(
    "ocis_job_attempts_total",
    "Job attempts ended, by kind and outcome (done, retried, failed, parked)",
    ["kind", "outcome"],
)

# Operation names are the client's to choose: only plain GraphQL names become label values, and
# only so many per process, so a caller cannot grow the metrics without bound.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPERATION_LABELS = 200
_seen_operations: set[str] = set()
_seen_lock = threading.Lock()


def operation_label(name: object) -> str:
    """The label value for a GraphQL operation name."""
    if not isinstance(name, str) or not name:
        return "anonymous"
    if not _NAME.fullmatch(name):
        return "invalid"
    with _seen_lock:
        if name in _seen_operations:
            return name
        if len(_seen_operations) >= MAX_OPERATION_LABELS:
            return "other"
        _seen_operations.add(name)
    return name


def exposition() -> tuple[bytes, str]:
    """The metrics of this process, or of every process sharing the multiprocess directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# The attributes a record may carry beyond its message (logger.info(..., extra={...})).
LOG_FIELDS = ("request_id", "method", "route", "operation", "status", "duration_ms")


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the request fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback's locals and messages may quote what a caller sent.
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


# Libraries whose INFO lines quote URLs (httpx logs every request it makes, query and all).
QUIET = ("httpx", "httpcore")


def configure_logging(level: int = logging.INFO) -> None:
    """Every logger (uvicorn's too) writes JSON lines to standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Its lines print client IPs and raw paths; web/request_log.py writes one line per request.
    logging.getLogger("uvicorn.access").disabled = True
    # And its WebSocket handshake lines, which it writes to the error log, the client's too.
    logging.getLogger("uvicorn.error").addFilter(without_websocket_handshakes)


def without_websocket_handshakes(record: logging.LogRecord) -> bool:
    """Drop uvicorn's `<client ip:port> - "WebSocket /path" ...` lines."""
    return not str(record.msg).startswith('%s - "WebSocket')
