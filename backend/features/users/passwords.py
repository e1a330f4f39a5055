"""Password hashes: argon2id, with the parameters in config.

Hashes made by werkzeug (the template's earlier scheme) still verify; `needs_rehash`
says when a login should store a new hash, so they are upgraded as people sign in.
"""

import base64
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
    faster for them would tell an attacker which emails do.

    The dummy is a well-formed argon2id hash with random bytes, built without hashing,
    so that not even the first call in a process costs more.
    """
    hasher = _hasher()
    salt, digest = (_b64(secrets.token_bytes(n)) for n in (hasher.salt_len, hasher.hash_len))
    params = f"m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
    verify_password(f"{ARGON2_PREFIX}v=19${params}${salt}${digest}", password)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")
