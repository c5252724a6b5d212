"""1,000 SMS per business through real ``crm worker`` processes killed with SIGKILL at random points.

The SMS go through ``send_sms`` (messages + outbox rows), then the crm-sms-http provider, to
local gateways (``crm_sms_http.testing.FakeGateway``) that record every SMS that "reached a
phone": business acme's gateway deduplicates on an idempotency field, globex's does not (as
with Twilio). The gateways accept an SMS, then answer after 2 ms: a worker killed in that window
has sent it without knowing. Workers are ``crm worker`` subprocesses; each round starts the next
worker(s) and kills the current ones at a random point (on PostgreSQL rounds alternate one and
two workers; on SQLite the next worker stands by on the lock until the current one dies), and
the last ones drain the queue. Then:

* none is lost: every message is recorded sent, with the gateway's id, and reached the gateway;
* with an idempotency field the gateway drops repeats: every message reached a phone exactly
  once (the retries it dropped are counted);
* without one, a message whose worker died between the gateway's acceptance and the commit of
  the outcome is sent again: such duplicates are counted and printed, and each of them is a
  message whose outbox job ran more than once (the core can point at every possible duplicate).

The SMS job timeout is lowered for the run (3 s instead of 120 s, with a 0.5 s lease margin), so
the rows a killed worker held come back within seconds; everything else is production code.
Figures are printed (``-s``), never asserted on time.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from crmcore.context import use_case
from crmcore.messaging.service import send_sms
from crmcore.plugins.service import enable_plugin
from crmcore.tenancy.models import Role

crm_sms_http = pytest.importorskip("crm_sms_http")
from crm_sms_http.testing import FakeGateway  # noqa: E402

TOTAL = 1000
CHUNK = 25
ROUNDS = int(os.environ.get("CRM_CHAOS_ROUNDS", "6"))
CONCURRENCY = os.environ.get("CRM_CHAOS_CONCURRENCY", "4")
JOB_TIMEOUT = 3.0
#: one worker process: the real CLI, after lowering the SMS job's timeout for this run
BOOT = (
    "import sys\n"
    "from crmcore.messaging import delivery\n"
    "from crmcore.outbox.service import register_handler\n"
    f"register_handler('sms', delivery.deliver_sms, timeout={JOB_TIMEOUT}, replace=True)\n"
    "from crmcore.cli import main\n"
    "main(args=sys.argv[1:], prog_name='crm')\n"
)


@use_case(Role.MEMBER)
def queue_all(ctx, n: int) -> None:
    """n SMS in one transaction (send_sms joins it)."""
    for i in range(n):
        send_sms(ctx, to=f"+3247{i:07d}", text=f"Chaos SMS {i}: your appointment is confirmed.")


class Workers:
    def __init__(self, crm, tmp_path: Path) -> None:
        self.crm = crm
        self.log = tmp_path / "workers.log"
        self.env = {**os.environ,
                    "CRM_INSTANCE_PATH": str(crm.config.instance_path),
                    "CRM_DATABASE_URL": crm.config.database_url,
                    "CRM_SECRET_KEY": crm.config.secret_key,
                    "CRM_SECRETS_KEY": crm.config.secrets_key,
                    "CRM_OUTBOX_LEASE_MARGIN": "0.5",
                    "CRM_OUTBOX_INLINE": "0"}
        self.running: list[subprocess.Popen] = []
        self.kills = 0

    def start(self, n: int = 1) -> list[subprocess.Popen]:
        procs = []
        with open(self.log, "ab") as log:
            for _ in range(n):
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", BOOT, "worker", "--batch", "20", "--concurrency", CONCURRENCY,
                     "--poll", "0.05", "--log-level", "warning"],
                    env=self.env, stdout=log, stderr=log))
        self.running.extend(procs)
        return procs

    def kill(self, procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                self.kills += 1
            proc.wait(timeout=10)
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


def unsent(crm) -> int:
    with crm.db.engine.connect() as conn:
        return conn.execute(text("select count(*) from messages where status = 'queued'")).scalar()


def _settings(gateway: FakeGateway, **extra) -> dict:
    return {"url_template": gateway.url + "?ref={message_id}", "body_format": "json",
            "message_id_path": "messages.0.id", "timeout": 2.0, **extra}


def test_none_lost_under_sigkill(crm, ctx, other_ctx, tmp_path):
    """Business acme's gateway deduplicates on an idempotency field, globex's does not (as with
    Twilio); 1,000 SMS each, one chaos run. PostgreSQL alternates one and two workers."""
    two = crm.db.dialect == "postgresql"
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    with FakeGateway(idempotency_field="client_ref", delay=0.002) as keyed, FakeGateway(delay=0.002) as plain:
        enable_plugin(ctx, "sms-http", _settings(keyed, idempotency_field="client_ref"))
        enable_plugin(other_ctx, "sms-http", _settings(plain))
        queued_at = time.monotonic()
        for _ in range(TOTAL // CHUNK):  # interleaved, so that the kills hit both businesses' jobs
            queue_all(ctx, CHUNK)
            queue_all(other_ctx, CHUNK)
        queue_seconds = time.monotonic() - queued_at
        assert unsent(crm) == 2 * TOTAL
        pool = Workers(crm, tmp_path)
        rng = random.Random(int(os.environ.get("CRM_CHAOS_SEED", "0")) or None)
        started = time.monotonic()
        try:
            current = pool.start()
            wait_until = time.monotonic() + 20
            while unsent(crm) == 2 * TOTAL and time.monotonic() < wait_until:
                time.sleep(0.02)  # the first worker is at work
            for round_ in range(ROUNDS):
                # the next workers boot while the current ones work (on SQLite the next one
                # stands by until the lock is free); then the current ones die at a random point
                following = pool.start(2 if two and round_ % 2 == 0 else 1)
                time.sleep(rng.uniform(0.3, 1.5))
                pool.kill(current)
                current = following
                if unsent(crm) == 0:
                    break
            deadline = time.monotonic() + 60
            while unsent(crm) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            pool.stop_all()
        elapsed = time.monotonic() - started
        tail = pool.log.read_text(errors="replace")[-3000:] if pool.log.exists() else ""
        results = {name: _check(crm, business, gateway, tail)
                   for name, business, gateway in (("idempotent", ctx.business_id, keyed),
                                                   ("not idempotent", other_ctx.business_id, plain))}
    figures = {"database": crm.db.dialect, "workers": "1 and 2" if two else 1, "kills": pool.kills,
               "queueing s": round(queue_seconds, 1), "sending s": round(elapsed, 1)}
    print(f"\nSMS chaos: {figures}")
    for name, result in results.items():
        print(f"  {name}: {result}")
    assert results["idempotent"]["duplicates"] == 0
    assert results["idempotent"]["reached a phone"] == TOTAL


def _check(crm, business_id: int, gateway: FakeGateway, tail: str) -> dict:
    """None lost; every duplicate traced to a job that ran more than once. Returns the figures."""
    with crm.db.engine.connect() as conn:
        rows = conn.execute(text(
            "select m.id, m.status, m.provider_message_id, o.attempts from messages m "
            "join outbox o on o.id = m.outbox_id where m.business_id = :b order by m.id"), {"b": business_id}).all()
    copies = gateway.copies(by="ref")
    reran = {str(r.id) for r in rows if r.attempts > 1}
    duplicates = {ref: n - 1 for ref, n in copies.items() if n > 1}
    assert len(rows) == TOTAL
    assert all(r.status == "sent" and r.provider_message_id for r in rows), (
        [tuple(r) for r in rows if r.status != "sent"][:5], tail)
    assert {str(r.id) for r in rows} == set(copies), "a message never reached the gateway"
    # every duplicate is a message whose job ran more than once: visible, never silent
    assert set(duplicates) <= reran
    return {"gateway requests": len(gateway.requests), "reached a phone": len(gateway.delivered),
            "repeats dropped by the gateway": gateway.duplicates_dropped,
            "duplicates": sum(duplicates.values()), "jobs run more than once": len(reran)}
