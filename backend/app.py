"""The application factory: read top to bottom, it is the table of contents of the app."""

import importlib
import importlib.util

from flask import Flask

from backend.api import operations
from backend.api_docs import init_api_docs
from backend.auth import init_auth
from backend.caching import init_cache
from backend.client_versions import init_client_versions
from backend.config_loading import ConfigError, load_config
from backend.cookie_session import CookieSessionOnDemand
from backend.cors import init_cors
from backend.database import init_database
from backend.doctor import doctor
from backend.error_reporting import init_error_reporting
from backend.errors import register_error_handlers
from backend.extensions import rebar
from backend.health import health
from backend.http_rules import init_http_rules
from backend.log_setup import configure_logging
from backend.mail import init_mail
from backend.metrics import init_metrics
from backend.proxies import init_proxies
from backend.rate_limits import init_rate_limits
from backend.request_ids import init_request_ids
from backend.scaffold import init_scaffold
from backend.scheduler import init_scheduler
from backend.security_headers import init_security_headers
from backend.url_converters import IdConverter

# The features served: folders of backend/features/. `flask scaffold NAME` adds one
# here; delete a line (and the folder) to remove one.
FEATURES = (
    "users",
    "accounts",
    "audit",
    "items",
)


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.session_interface = CookieSessionOnDemand()
    load_config(app, config)
    init_error_reporting(app)
    init_request_ids(app)  # first: every log line and error after it carries the id
    configure_logging(app)
    init_proxies(app)
    init_security_headers(app)
    init_http_rules(app)  # before any route: it sets how the URL map matches them
    init_database(app)
    init_cache(app)
    init_client_versions(app)
    init_scheduler(app)
    init_cors(app)
    init_mail(app)
    register_api(app)
    init_rate_limits(app)  # after the API: it checks the limits its endpoints name
    register_commands(app)
    init_metrics(app)
    init_auth(app)  # after the API and metrics: it checks configured scopes against theirs
    init_api_docs(app)
    init_scaffold(app)
    register_error_handlers(app)  # last: these replace the handlers rebar registered
    return app


def register_api(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    import_features()
    rebar.init_app(app)
    app.register_blueprint(health)


def register_commands(app: Flask) -> None:
    """A feature's `cli.py`, if it has one, adds its command group: `flask users ...`."""
    for name in FEATURES:
        if importlib.util.find_spec(f"backend.features.{name}.cli"):
            app.cli.add_command(importlib.import_module(f"backend.features.{name}.cli").cli)
    app.cli.add_command(doctor)


def import_features() -> None:
    """Importing a feature's handlers module registers its endpoints on the API registry.

    The registry belongs to the process, so a handlers module imported from anywhere
    else would be served too: that is refused, so removing a line always removes a feature.
    """
    listed = [f"backend.features.{name}.handlers" for name in FEATURES]
    for module in listed:
        importlib.import_module(module)
    unlisted = {definition.func.__module__ for _, _, definition in operations()} - set(listed)
    if unlisted:
        raise ConfigError(
            f"Config error: {', '.join(sorted(unlisted))} registered endpoints but "
            "is not in FEATURES (backend/app.py); features import each other's models, "
            "never their handlers."
        )
