"""A scheduled job of the items feature, named in JOBS (backend/settings.py)."""

import logging

from sqlalchemy import func, select

from backend.extensions import db
from backend.features.items.models import Item
from backend.features.users.models import User

logger = logging.getLogger(__name__)


def log_item_counts() -> None:
    """Log how many users and items there are: a job that reads the database."""
    users = db.session.scalar(select(func.count()).select_from(User))
    items = db.session.scalar(select(func.count()).select_from(Item))
    logger.info("%d user(s), %d item(s).", users, items)
