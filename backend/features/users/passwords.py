"""Password hashes: argon2id, with the parameters in config.

Hashes made by werkzeug (the template's earlier scheme) still verify; `needs_rehash`
says when a login should store a new hash, so they are upgraded as people sign in.
"""

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from werkzeug.security import check_password_hash

ARGON2_PREFIX = "$argon2id$"


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get("password_hasher")
    if hasher is None:
        config = current_app.config
        hasher = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
        current_app.extensions["password_hasher"] = hasher
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    if not stored_hash.startswith("$argon2"):
        return check_password_hash(stored_hash, password)
    try:
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True for werkzeug hashes and for argon2 hashes made with other parameters."""
    return not stored_hash.startswith(ARGON2_PREFIX) or _hasher().check_needs_rehash(stored_hash)


def verify_dummy(password: str) -> None:
    """Costs what verifying a real hash costs, for emails that have no account: answering
    faster for them would tell an attacker which emails do."""
    dummy = current_app.extensions.get("dummy_password_hash")
    if dummy is None:
        dummy = hash_password(secrets.token_urlsafe(16))
        current_app.extensions["dummy_password_hash"] = dummy
    verify_password(dummy, password)
