"""kill -9, again and again: real ``crm worker`` processes run 1,000 queued jobs that POST to a
local HTTP sink, and are killed with SIGKILL at arbitrary points of their batches, then started
again. Afterwards every job is done and the sink got every key: none lost.

Duplicates are possible by design (a kill between "sent" and "recorded"); they are counted and
printed. The sink has two doors: ``/dedup`` honours the ``Idempotency-Key`` header (as Stripe or
Twilio's idempotent endpoints do), so a resend there is recognised and has no second effect;
``/plain`` does not, so a resend there is a second effect, which is allowed only there.

Two workers run side by side: on PostgreSQL both work (SKIP LOCKED); on SQLite one works and the
other stands by and takes over when the first is killed. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select

from crmcore.context import use_case
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.service import enqueue
from crmcore.tenancy.models import Role

JOBS = 1000
#: kill when this many jobs were delivered (plus a random few ms): wherever a batch then is
KILL_AT = (80, 200, 330, 460, 590, 720, 850)
TESTS = Path(__file__).resolve().parent


class Sink:
    """The provider: counts requests and effects per idempotency key."""

    def __init__(self, latency: float = 0.002) -> None:
        self.requests: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()
        self.lock = threading.Lock()
        sink = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                assert key == body["key"]
                time.sleep(latency)  # a provider takes a moment: kills land between send and record
                with sink.lock:
                    sink.requests[key] += 1
                    if self.path == "/plain" or key not in sink.effects:
                        sink.effects[key] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> int:
        with self.lock:
            return len(self.effects)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@use_case(Role.MEMBER)
def queue_jobs(ctx, url):
    keys = {}
    for n in range(JOBS):
        door = "dedup" if n % 2 else "plain"
        key = f"chaos:{door}:{n}:{ctx.new_key()}"
        enqueue(ctx, "chaos-post", "chaos.test", {"url": f"{url}/{door}", "n": n}, idempotency_key=key)
        keys[key] = door
    return keys


class Workers:
    """``crm worker`` processes in numbered slots, killed and started again."""

    def __init__(self, crm, tmp_path: Path) -> None:
        self.url = crm.config.database_url
        self.sqlite = crm.db.dialect == "sqlite"
        self.tmp = tmp_path
        self.lock_file = Path(crm.db.engine.url.database + ".worker-lock") if self.sqlite else None
        self.env = {**os.environ, "CRM_LOAD_PLUGINS": "", "CRM_OUTBOX_JOB_TIMEOUT": "2",
                    "CRM_OUTBOX_LEASE_MARGIN": "1", "CRM_OUTBOX_BACKOFF_BASE": "0.05",
                    "CRM_OUTBOX_PRUNE_INTERVAL": "3600",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
        self.env.pop("CRM_TEST_DATABASE_URL", None)
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: list[Path] = []
        self.kills = 0

    def start(self, slot: int) -> None:
        log = self.tmp / f"worker-{slot}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.procs[slot] = subprocess.Popen(
                [sys.executable, "-m", "crmcore.cli", "--instance", str(self.tmp / "instance"),
                 "--database", self.url, "worker", "--batch", "20", "--poll", "0.05",
                 "--import", "outbox_chaos_handler"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def working(self) -> int | None:
        """The slot whose worker runs the outbox (SQLite: the lock holder; else any)."""
        alive = [s for s, p in self.procs.items() if p.poll() is None]
        if not self.sqlite or not alive:
            return alive[0] if alive else None
        try:
            pid = int(self.lock_file.read_text().strip().rsplit(":", 1)[-1])
        except (OSError, ValueError):
            return None
        return next((s for s in alive if self.procs[s].pid == pid), None)

    def kill(self, slot: int) -> None:
        proc = self.procs[slot]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            self.kills += 1

    def stop_all(self) -> list[int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(30) for proc in self.procs.values()]

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def _unfinished(crm) -> int:
    with crm.db.session(unscoped=True) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.status != "done"))


def test_kill_9_at_random_points_loses_no_job(crm, ctx, tmp_path):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    sink = Sink()
    workers = Workers(crm, tmp_path)
    started = time.monotonic()
    try:
        keys = queue_jobs(ctx, sink.url)
        workers.start(0)
        workers.start(1)
        for threshold in KILL_AT:
            deadline = time.monotonic() + 40
            while sink.delivered() < threshold and time.monotonic() < deadline:
                time.sleep(0.002)
            assert sink.delivered() >= threshold, f"stuck at {sink.delivered()} (seed {seed})\n{workers.log_text()}"
            time.sleep(rng.uniform(0, 0.03))  # anywhere in a batch: claiming, sending, recording
            both = threshold == KILL_AT[3]  # once, a total outage: both die
            slot = workers.working()
            for victim in ([0, 1] if both else [slot if slot is not None else rng.choice([0, 1])]):
                workers.kill(victim)
                workers.start(victim)
        deadline = time.monotonic() + 50
        while _unfinished(crm) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _unfinished(crm)
        codes = workers.stop_all()
    finally:
        for proc in workers.procs.values():
            if proc.poll() is None:
                proc.kill()
        sink.close()
    seconds = time.monotonic() - started
    logs = workers.log_text()

    assert left == 0, f"{left} jobs not done (seed {seed})\n{logs[-5000:]}"
    assert codes == [0, 0], f"a worker did not stop cleanly on SIGTERM: {codes}\n{logs[-3000:]}"
    assert set(sink.effects) == set(keys), f"lost: {len(set(keys) - set(sink.effects))} (seed {seed})"
    dedup = [k for k, door in keys.items() if door == "dedup"]
    plain = [k for k, door in keys.items() if door == "plain"]
    assert all(sink.effects[k] == 1 for k in dedup), "a deduplicating provider saw a second effect"
    resent_dedup = sum(sink.requests[k] - 1 for k in dedup)
    twice_plain = sum(sink.effects[k] - 1 for k in plain)
    with crm.db.session(unscoped=True) as session:
        rows = session.scalars(select(OutboxMessage)).all()
    reclaimed = sum(1 for r in rows if r.attempts > 1)
    assert len(rows) == JOBS and {r.status for r in rows} == {"done"}
    if workers.sqlite:
        assert "stands by" in logs and "took over" in logs
    print(f"\nkill -9 chaos on {crm.db.dialect} (seed {seed}): {JOBS} jobs, {workers.kills} kills, "
          f"{seconds:.1f} s; none lost; rows claimed again after a kill: {reclaimed}; "
          f"resent to the deduplicating door: {resent_dedup} (no second effect); "
          f"delivered twice through the plain door: {twice_plain}")
