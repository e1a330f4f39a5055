"""The User model: a person who signs in, with a role; the password is kept as a hash only."""

from sqlalchemy import String, false
from sqlalchemy.orm import Mapped, mapped_column

from backend.database import Timestamps
from backend.extensions import Model
from backend.features.users.passwords import hash_password, verify_password


class User(Timestamps, Model):
    __tablename__ = "users"
    # Tokens and the audit trail name users by id: never a deleted user's id for a new one.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lowercased (see CreateUserSchema), so uniqueness ignores case.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    # One of ROLES (backend/auth.py); what each may do is ROLE_SCOPES in settings.
    role: Mapped[str] = mapped_column(String(20), default="user", server_default="user")
    # A blocked user cannot sign in, and their sessions were ended when they were blocked.
    blocked: Mapped[bool] = mapped_column(default=False, server_default=false())

    def set_password(self, password: str) -> None:
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        return verify_password(self.password_hash, password)
