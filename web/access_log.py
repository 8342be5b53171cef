"""uvicorn's access log without query strings: they carry codes, states and tokens."""

from __future__ import annotations

import logging


class QuerylessAccessLog(logging.Filter):
    """Access-log lines without query strings."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def quiet_access_log() -> None:
    """Install the filter once (after uvicorn configured its loggers)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, QuerylessAccessLog) for existing in access.filters):
        access.addFilter(QuerylessAccessLog())
