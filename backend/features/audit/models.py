"""The audit trail: one row per security event, never a password or a token."""

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.database import utcnow
from backend.extensions import Model


class AuditEvent(Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        # Failed logins counted per email and per IP (backend/features/accounts/limits.py).
        Index("ix_audit_events_action_email_created_at", "action", "email", "created_at"),
        Index("ix_audit_events_action_ip_created_at", "action", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    # What happened: login_succeeded, login_failed, logout, password_changed, ...
    action: Mapped[str] = mapped_column(String(40))
    # Whose account it concerns. No foreign key: the trail outlives deleted users.
    user_id: Mapped[int | None] = mapped_column(index=True)
    # Who did it: "user=42" or "client=reporting"; None when nobody had signed in.
    actor: Mapped[str | None] = mapped_column(String(64))
    # The email given at a login or reset request, whether or not an account has it.
    email: Mapped[str | None] = mapped_column(String(254))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(String(255))
