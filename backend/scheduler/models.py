"""The scheduler's tables. The migrations create them, like every other table."""

from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Model

# APScheduler's own length for job ids, which the API checks ids against.
JOB_ID_LENGTH = 191

# APScheduler's SQLAlchemyJobStore table, defined as it defines it, so that Alembic
# creates it once instead of every worker racing to at start.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Model.metadata,
    Column("id", String(JOB_ID_LENGTH), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class JobRun(Model):
    """One scheduled run time of one job: claimed once, by one instance, and its outcome."""

    __tablename__ = "job_runs"
    # The guard of exactly-once: a second claim of the same run time fails.
    __table_args__ = (UniqueConstraint("job_id", "scheduled_run_time"),)

    PENDING = "pending"  # claimed, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"  # later than the job's misfire_grace_time allows
    INTERRUPTED = "interrupted"  # the instance running it stopped mid-run

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH))
    scheduled_run_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    # host:pid:random of the instance that claimed it.
    owner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class SchedulerLease(Model):
    """Who runs the jobs, until when (seconds since the epoch, by the database's clock)."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, server_default="0")
