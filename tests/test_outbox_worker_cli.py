"""``crm worker`` and ``crm serve --with-worker``: real commands, real processes, real signals."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from crmcore import hookimpl
from crmcore.cli import main
from crmcore.context import use_case
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.service import enqueue
from crmcore.tenancy.models import Role

TESTS = Path(__file__).resolve().parent


@use_case(Role.MEMBER)
def queue_jobs(ctx, kind, n, payload=None):
    return [enqueue(ctx, kind, "cli.test", {"n": i, **(payload or {})}, idempotency_key=f"cli-{ctx.new_key()}")
            for i in range(n)]


def rows(crm):
    with crm.db.session(unscoped=True) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def env_for(crm, **extra):
    env = {**os.environ, "CRM_LOAD_PLUGINS": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])), **extra}
    env.pop("CRM_TEST_DATABASE_URL", None)
    return env


def crm_command(crm, tmp_path, *args):
    return [sys.executable, "-m", "crmcore.cli", "--instance", str(tmp_path / "instance"),
            "--database", crm.config.database_url, *args]


def wait_for(path: Path, text: str, proc: subprocess.Popen, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the output:\n{path.read_text(errors='replace') if path.exists() else ''}")


def test_worker_once_runs_queued_react_hooks_and_says_what_it_did(crm, ctx, register_plugin, tmp_path):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    seen = []

    class Plugin:
        @hookimpl
        def crm_after_party_created(self, ctx, party):
            seen.append(party.name)

    register_plugin(Plugin(), enable_for=ctx)
    from crmcore.parties.service import create_party

    for name in ("One", "Two"):
        create_party(ctx, {"kind": "organisation", "name": name})
    result = CliRunner().invoke(main, ["--instance", str(tmp_path / "instance"), "--database",
                                       crm.config.database_url, "worker", "--once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(seen) == ["One", "Two"]
    assert "jobs: " in result.output and " 0 failed" in result.output
    assert all(r.status == "done" for r in rows(crm) if r.topic == "crm_after_party_created")


def test_worker_refuses_a_module_it_cannot_import(crm, tmp_path):
    result = CliRunner().invoke(main, ["--instance", str(tmp_path / "instance"), "--database",
                                       crm.config.database_url, "worker", "--once", "--import", "no_such_module_x"])
    assert result.exit_code == 1 and "error: --import no_such_module_x" in result.output


def test_sigterm_finishes_the_running_jobs_and_leaves_no_row_running(crm, ctx, tmp_path):
    """A worker stopped mid-queue: every row is done, or handed back as it was."""
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.02)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    Thread(target=server.serve_forever, daemon=True).start()
    queue_jobs(ctx, "chaos-post", 200, {"url": f"http://127.0.0.1:{server.server_port}/"})
    log = tmp_path / "worker.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(crm_command(crm, tmp_path, "worker", "--batch", "50", "--import",
                                                "outbox_chaos_handler"),
                                    env=env_for(crm), stdout=out, stderr=subprocess.STDOUT)
        wait_for(log, "claimed", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.shutdown()
        server.server_close()
    output = log.read_text()
    assert "SIGTERM: stopping after the running jobs" in output and "stopped:" in output
    statuses = {r.status for r in rows(crm)}
    assert "running" not in statuses and statuses <= {"done", "pending"}
    assert all(r.attempts == (1 if r.status == "done" else 0) for r in rows(crm))


def test_a_second_worker_stands_by_on_sqlite_and_works_on_postgresql(crm, tmp_path):
    procs, logs = [], []
    try:
        for i in range(2):
            logs.append(tmp_path / f"w{i}.log")
            with open(logs[-1], "wb") as out:
                procs.append(subprocess.Popen(crm_command(crm, tmp_path, "worker", "--poll", "0.1"),
                                              env=env_for(crm), stdout=out, stderr=subprocess.STDOUT))
            wait_for(logs[-1], "started" if i == 0 else "outbox worker", procs[-1])
        if crm.db.dialect == "sqlite":
            second = wait_for(logs[1], "stands by", procs[1])
            assert "started" not in second
            assert f":{procs[0].pid})" in second  # names the worker it waits for
            procs[0].send_signal(signal.SIGTERM)
            assert procs[0].wait(30) == 0
            wait_for(logs[1], "took over", procs[1])
        else:
            wait_for(logs[1], "started", procs[1])
            assert "stands by" not in logs[1].read_text()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        assert [proc.wait(30) for proc in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_worker_runs_jobs_in_process(crm, ctx, tmp_path):
    """One command: the web server's processes run the outbox too (SQLite: one of them does)."""
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    (tmp_path / "instance" / "crm.toml").write_text(f'secret_key = "x{os.urandom(8).hex()}"\n')
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(crm_command(crm, tmp_path, "serve", "--port", str(port), "--workers", "2",
                                            "--with-worker", "--no-access-log"),
                                env=env_for(crm), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(log, "outbox worker", proc)
        [job_id] = queue_jobs(ctx, "nobody", 1)  # no process has a handler for it: it fails, visibly
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and rows(crm)[0].status in ("pending", "running"):
            time.sleep(0.1)
        [row] = rows(crm)
        assert row.id == job_id and row.status == "failed" and "no handler" in row.last_error
        output = wait_for(log, "started on", proc)
        if crm.db.dialect == "sqlite":
            wait_for(log, "stands by", proc)
        else:
            assert output.count("started on") >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert "the in-process outbox worker stopped" not in log.read_text()
