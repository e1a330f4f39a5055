"""The client's address and scheme when the app runs behind reverse proxies.

Each proxy appends the address it got the request from to X-Forwarded-For. With
`TRUSTED_PROXIES` = N, werkzeug's ProxyFix takes the Nth address from the right as the
client's, so a client cannot pose as another by sending the header itself. Login
limits, the audit trail and the request log all key on that address: behind a proxy
with the setting at 0, every client would share the proxy's.
"""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_proxies(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
