"""The ``console`` SMS provider: logs each SMS and keeps it in memory; sends nothing.

The in-memory list is per process and shared by every business of the process (it is a
development aid, not a store): read it with :func:`sent_messages`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crmcore.messaging.providers import OutgoingSms, SendResult, SmsProvider
from crmcore.messaging.sms import sms_parts

log = logging.getLogger("crm.sms.console")

KEEP = 1000


@dataclass(frozen=True)
class ConsoleSms:
    provider_message_id: str
    message_id: int
    idempotency_key: str
    to: str
    sender: str | None
    body: str
    segments: int
    encoding: str
    status_callback_url: str | None


_sent: deque[ConsoleSms] = deque(maxlen=KEEP)
_lock = threading.Lock()


def sent_messages() -> list[ConsoleSms]:
    """What this process "sent", oldest first (the last 1,000)."""
    with _lock:
        return list(_sent)


def clear_sent_messages() -> None:
    with _lock:
        _sent.clear()


class ConsoleSmsProvider(SmsProvider):
    name = "console"
    title = "Console (development: logs, sends nothing)"
    timeout = 1.0
    supports_idempotency = False

    def send(self, message: OutgoingSms, settings: Mapping[str, Any]) -> SendResult:
        parts = sms_parts(message.body)
        sender = message.sender or settings.get("sender") or None
        record = ConsoleSms(
            provider_message_id=f"console-{uuid.uuid4().hex}",
            message_id=message.message_id,
            idempotency_key=message.idempotency_key,
            to=message.to,
            sender=sender,
            body=message.body,
            segments=parts.segments,
            encoding=parts.encoding,
            status_callback_url=message.status_callback_url,
        )
        with _lock:
            _sent.append(record)
        log.info("SMS to %s from %s (%d part(s), %s, message %s): %s", message.to, sender or "-",
                 parts.segments, parts.encoding, message.message_id, message.body)
        status = "delivered" if settings.get("report_delivered") else "sent"
        return SendResult(provider_message_id=record.provider_message_id, status=status,
                          segments=parts.segments)
