"""The client's address and scheme when the app runs behind reverse proxies.

Each proxy appends the address it got the request from to X-Forwarded-For. With
`TRUSTED_PROXIES` = N, werkzeug's ProxyFix takes the Nth address from the right as the
client's, so a client cannot pose as another by sending the header itself. Login
limits, the audit trail and the request log all key on that address: behind a proxy
with the setting at 0, every client would share the proxy's. The header arriving
while the setting is 0 is therefore logged, once per process, and noted in the shared
cache for `flask doctor`.
"""

import logging
import time
from datetime import UTC, datetime

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.extensions import cache

logger = logging.getLogger(__name__)

FORWARDED_FOR_SEEN = "proxies:forwarded-for-seen"
# The note lasts a day after the header was last seen; each process renews it at most
# hourly, so a request costs a dictionary lookup.
SEEN_NOTE_SECONDS = 24 * 3600
RENEW_SECONDS = 3600


def init_proxies(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    else:
        app.before_request(ForwardedForWatch())


def forwarded_for_seen() -> str | None:
    """When a worker last noted X-Forwarded-For with TRUSTED_PROXIES at 0, if within a day."""
    return cache.get(FORWARDED_FOR_SEEN)


class ForwardedForWatch:
    """Notices X-Forwarded-For: a proxy in front that the setting does not count, or a
    client sending the header itself (harmless: it is ignored)."""

    def __init__(self) -> None:
        self.warned = False
        self.renew_at = 0.0

    def __call__(self) -> None:
        if "HTTP_X_FORWARDED_FOR" not in request.environ or time.monotonic() < self.renew_at:
            return
        self.renew_at = time.monotonic() + RENEW_SECONDS
        seen = datetime.now(UTC).isoformat(timespec="seconds")
        cache.set(FORWARDED_FOR_SEEN, seen, timeout=SEEN_NOTE_SECONDS)
        if not self.warned:
            self.warned = True
            logger.warning(
                "X-Forwarded-For arrives but TRUSTED_PROXIES is 0: behind a proxy, every "
                "client gets its address. Set FLASK_TRUSTED_PROXIES to the number of proxies."
            )
