"""Outbox rows: one per side effect, written in the transaction of the change that caused it."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"      # due at next_attempt_at
    RUNNING = "running"      # claimed by a worker until locked_until
    DONE = "done"
    FAILED = "failed"        # failed, will be retried at next_attempt_at
    PARKED = "parked"        # gave up after max attempts; an admin may retry or discard
    DISCARDED = "discarded"


#: statuses a worker may claim: due ones, and running ones whose lease ran out (their worker died)
CLAIMABLE = (OutboxStatus.PENDING.value, OutboxStatus.FAILED.value, OutboxStatus.RUNNING.value)
#: statuses the worker prunes once they are older than the retention
FINISHED = (OutboxStatus.DONE.value, OutboxStatus.DISCARDED.value)

_CLAIMABLE_SQL = text("status IN ('pending', 'failed', 'running')")
_FINISHED_SQL = text("status IN ('done', 'discarded')")


class OutboxMessage(IdMixin, TimestampMixin, Base):
    """A side effect to run: a plugin's react-hook (``kind='hook'``), an email, an SMS, ...

    ``idempotency_key`` is unique: enqueueing the same effect twice is a no-op, and handlers pass
    it to providers that deduplicate. ``payload`` holds JSON only (models by reference).

    ``next_attempt_at`` is when the row may be claimed next: for a pending or failed row, when it
    is due; for a running row, when its lease ends (``locked_until``), after which a worker may
    claim it again because the one that held it is presumed dead. So one partial index, on that
    column over the claimable statuses only, answers every claim in order, however many done
    rows the table holds. ``attempts`` grows with every claim and fences outcomes: a worker
    records its result only while the row is still running with the attempt it claimed.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "next_attempt_at", sqlite_where=_CLAIMABLE_SQL, postgresql_where=_CLAIMABLE_SQL),
        Index("ix_outbox_finished", "done_at", sqlite_where=_FINISHED_SQL, postgresql_where=_FINISHED_SQL),
        Index("ix_outbox_business_status", "business_id", "status", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(100))
    plugin: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[float | None]
    done_at: Mapped[dt.datetime | None]
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
