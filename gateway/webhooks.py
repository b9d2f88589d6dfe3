"""`POST /webhooks/{cms}`: authenticate a CMS publish webhook, then invalidate.

401 when the sender cannot be verified (nothing changes), 400 for a payload
that names nothing we understand, 404 for a CMS other than the configured
one, 413 for bodies over 1 MiB, 503 (with `Retry-After`) when the cache or
Redis cannot be reached, so the CMS retries; 200 with the surrogate keys
purged otherwise.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cms_adapters.base import WebhookRequest
from cms_adapters.errors import CMSError, WebhookRejected
from cms_adapters.invalidation import Invalidator

logger = logging.getLogger(__name__)

#: The route's `BodyLimit` (gateway/app.py) answers 413 past it, and 408 to slow bodies.
MAX_WEBHOOK_BODY = 1 << 20


async def webhook(request: Request) -> Response:
    """Handle one publish webhook for the configured CMS."""
    invalidator: Invalidator = request.state.invalidator
    adapter = invalidator.content.adapter
    cms = request.path_params["cms"]
    if cms != adapter.name:
        return JSONResponse(
            {"error": f"no webhook for CMS {cms!r}; this gateway serves {adapter.name!r}"},
            status_code=404,
        )
    body = await request.body()  # whole and bounded already: the route reads it first
    incoming = WebhookRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        received_at=time.time(),
    )
    try:
        changed = await adapter.resolve_webhook(incoming)
    except WebhookRejected as exc:
        logger.warning("%s", exc)
        return JSONResponse({"error": str(exc)}, status_code=401)
    except CMSError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        keys = await invalidator.publish(changed)
    except Exception as exc:  # the cache or Redis is down: ask the CMS to retry later
        logger.error("%s webhook: invalidation failed: %s", adapter.name, exc)
        return JSONResponse(
            {"error": f"invalidation failed, retry later: {type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": "30"},
        )
    return JSONResponse({"invalidated": keys})
