"""GET /health: for load balancers and uptime checks, so it needs no API key."""

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.errors import RETRY_AFTER_SECONDS
from backend.extensions import db

health = Blueprint("health", __name__)


@health.get("/health")
def check_health() -> tuple[Response, int]:
    """200 while the database answers, 503 while it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        body = jsonify(
            message="The database is unreachable.", status="unavailable", database="unreachable"
        )
        body.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return body, 503
    return jsonify(status="ok", database="ok"), 200
