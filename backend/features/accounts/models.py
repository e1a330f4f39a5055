"""A login session: one device signed in, from login until logout, revocation or expiry."""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.database import utcnow
from backend.extensions import Model


class LoginSession(Model):
    __tablename__ = "login_sessions"
    # Tokens name their session by id: SQLite would hand a deleted row's id to the next
    # session, and an ended session's tokens to a new one, without AUTOINCREMENT.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Moves forward at every refresh: a session unused for the refresh token's lifetime ends.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How many times the session was refreshed: the one refresh token that still works
    # carries this number, so a spent one is recognised when it comes back.
    refresh_count: Mapped[int] = mapped_column(default=0)
