"""Leader election: one instance at a time holds a lease row and runs the jobs
(README.md: "The leader").
"""

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import ColumnElement, Engine, literal_column, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from backend.scheduler.models import SchedulerLease

logger = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


def insert_for(engine: Engine) -> Callable[..., postgresql.Insert | sqlite.Insert]:
    """INSERT with ON CONFLICT, which both supported databases have."""
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert


def database_clock(engine: Engine) -> ColumnElement[float]:
    if engine.dialect.name == "postgresql":
        return literal_column("extract(epoch from clock_timestamp())")
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)")


class LeaseElector(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        on_elected: Callable[[], None],
        on_demoted: Callable[[], None],
        on_tick: Callable[[], None],
        ttl: float,
        interval: float,
    ) -> None:
        super().__init__(name="scheduler-leader", daemon=True)
        self.engine = engine
        self.on_elected, self.on_demoted, self.on_tick = on_elected, on_demoted, on_tick
        self.ttl, self.interval = ttl, interval
        self.owner = ""  # set in the process that runs, after any fork
        self.stopping = threading.Event()
        self.is_leader = False
        self.valid_until = 0.0  # by this process's monotonic clock
        self.database_down = False

    def run(self) -> None:
        while not self.stopping.is_set():
            self.tick()
            self.stopping.wait(self.interval)

    def tick(self) -> None:
        try:
            leader = self.acquire_or_renew()
            if self.database_down:
                logger.warning("Scheduler: the database answers again.")
            self.database_down = False
        except Exception as error:
            if not self.database_down:
                logger.warning("Scheduler: database unreachable, retrying: %s", error)
            self.database_down = True
            leader = self.is_leader and time.monotonic() < self.valid_until
        try:
            if leader and not self.is_leader:
                self.on_elected()
                self.is_leader = True
            elif not leader and self.is_leader:
                self.is_leader = False
                self.on_demoted()
            if self.is_leader:
                self.on_tick()
        except Exception:
            if self.stopping.is_set():
                # The process stops the scheduler under a takeover: nothing went wrong.
                logger.info("Scheduler: stopped while taking over the jobs.")
            else:
                logger.exception("Scheduler: leadership change failed; stepping down.")
            self.is_leader = False
            self.on_demoted()
            self.release()  # let another instance try

    def acquire_or_renew(self) -> bool:
        now = database_clock(self.engine)
        started = time.monotonic()
        with self.engine.begin() as connection:
            connection.execute(
                insert_for(self.engine)(SchedulerLease)
                .values(name=LEASE_NAME, expires_at=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            taken = connection.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.name == LEASE_NAME,
                    or_(
                        SchedulerLease.owner == self.owner,
                        SchedulerLease.owner.is_(None),
                        SchedulerLease.expires_at < now,
                    ),
                )
                .values(owner=self.owner, expires_at=now + self.ttl)
            )
        if taken.rowcount == 1:
            # Step down one interval before the lease ends for everyone else.
            self.valid_until = started + self.ttl - self.interval
            return True
        return False

    def stop(self, release: bool = True) -> None:
        """Stop electing; a leader steps down and, unless told not to, frees the lease."""
        self.stopping.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=self.interval + 5)
        if self.is_leader:
            self.is_leader = False
            self.on_demoted()
            if release:
                self.release()

    def release(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(SchedulerLease)
                    .where(SchedulerLease.name == LEASE_NAME, SchedulerLease.owner == self.owner)
                    .values(owner=None)
                )
        except Exception as error:
            logger.warning("Scheduler: could not release the lease, it will expire: %s", error)
