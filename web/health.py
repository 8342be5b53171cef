"""Liveness and readiness for the load balancer."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models import db
from web.requests import request_id_of, store_of

logger = logging.getLogger("ocis")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await db.ping()
        await store_of(request).ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        logger.warning("readiness check failed (request %s)", request_id_of(request))
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})
