"""The admin and the API through a real HTTP server, measured by a lean client on the same machine.

* :func:`served` runs ``crm serve`` (gunicorn, gthread workers) in a subprocess on a free loopback
  port, on a database the harness has built, with the harness's keys;
* :func:`login` logs in through the real login form and returns the headers of that session;
* :func:`load` drives the server from ``concurrency`` client threads, each with its own keep-alive
  ``http.client`` connection (closed loop: a connection sends its next request once the answer to
  the previous one is read), and measures requests/s and latencies;
* :func:`sequential` measures single-client latency (one connection, one request at a time).

Server and client share the machine's cores, so the client is kept lean (no session objects, no
cookie jar, no redirects followed) and :class:`LoadResult` says how much CPU the client itself
used: when ``client_cpu`` nears 1.0 (one core, the GIL's limit) the client, not the server, is the
bottleneck; when the URL came from :func:`served`, it also gives the server's CPU time per request,
the figure that the sharing of the cores bends least. Every answer that is not 2xx, and every failed connection, is counted and reported:
a redirect to the login page is never taken for a served page.
"""

from __future__ import annotations

import http.client
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

#: sent with every request: flask-login's "strong" session protection ties a session to the
#: client's address and user agent, so the login and the load must present the same one
USER_AGENT = "crmcore-benchmark/1"
#: how many error messages a result keeps (the count is always complete)
ERROR_SAMPLES = 5


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Latency:
    """Latencies of the answered requests (any status) and the tally of statuses and failures."""

    count: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    #: requests that got no HTTP answer (refused, reset, timed out, malformed)
    errors: int
    error_samples: tuple[str, ...] = ()

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def ok(self) -> bool:
        return self.count > 0 and self.non_2xx == 0 and self.errors == 0

    def summary(self) -> str:
        return (f"median {self.median_ms:.2f} ms  p95 {self.p95_ms:.2f} ms  p99 {self.p99_ms:.2f} ms  "
                f"max {self.max_ms:.2f} ms  (n={self.count}{self._failures()})")

    def _failures(self) -> str:
        out = ""
        if self.non_2xx:
            bad = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()) if not 200 <= s < 300)
            out += f", non-2xx {self.non_2xx} ({bad})"
        if self.errors:
            out += f", errors {self.errors} ({'; '.join(self.error_samples)})"
        return out


@dataclass(frozen=True)
class LoadResult(Latency):
    requests_per_s: float = 0.0
    #: seconds from the end of the warmup to the last answer counted
    elapsed_s: float = 0.0
    concurrency: int = 0
    #: CPU the client process used during the measurement, in cores (1.0 = one core busy)
    client_cpu: float = 0.0
    #: the server's CPU time per answered request (gunicorn's master + workers; a PostgreSQL
    #: server's own backends are not counted), when the URL came from :func:`served` on Linux
    server_cpu_ms: float | None = None

    def summary(self) -> str:
        server = "" if self.server_cpu_ms is None else f"  server CPU {self.server_cpu_ms:.2f} ms/request"
        return (f"{self.requests_per_s:.1f} req/s with {self.concurrency} connections  "
                f"{super().summary()}  client CPU {self.client_cpu:.2f} core{server}")


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest sample with at least ``q`` of the samples at or below it."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def _latency(samples: list[float], statuses: Counter[int], errors: int, messages: list[str]) -> dict:
    ordered = sorted(samples)
    ms = 1000.0
    return dict(count=len(ordered), median_ms=(statistics.median(ordered) if ordered else 0.0) * ms,
                p95_ms=_percentile(ordered, 0.95) * ms, p99_ms=_percentile(ordered, 0.99) * ms,
                max_ms=(ordered[-1] if ordered else 0.0) * ms, statuses=dict(statuses), errors=errors,
                error_samples=tuple(messages[:ERROR_SAMPLES]))


# --------------------------------------------------------------------------------------------
# the client


@dataclass
class _Tally:
    """One client thread's measurements (merged after the run: no lock on the hot path)."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    last_answer: float = 0.0

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.messages) < ERROR_SAMPLES:
            self.messages.append(f"{type(exc).__name__}: {exc}")


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http:// URL, got {base_url!r}")
    return parts.hostname, parts.port or 80


def _request_headers(headers: dict[str, str] | None, keep_alive: bool) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    out.update(headers or {})
    if not keep_alive:
        out["Connection"] = "close"
    return out


class _Client:
    """One connection, reopened when the server closes it (``Connection: close``) or it fails."""

    def __init__(self, address: tuple[str, int], headers: dict[str, str], timeout: float) -> None:
        self.address = address
        self.headers = headers
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> int:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(*self.address, timeout=self.timeout)
        try:
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
            response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _drive(client: _Client, paths: list[str], first: int, start: threading.Barrier, clock: list[float],
           tally: _Tally) -> None:
    start.wait()
    window_start, window_end = clock
    i = first
    try:
        while True:
            began = time.perf_counter()
            if began >= window_end:
                return
            path = paths[i % len(paths)]
            i += 1
            try:
                status = client.get(path)
            except (OSError, http.client.HTTPException) as exc:
                if began >= window_start:
                    tally.failed(exc)
                time.sleep(0.005)  # a refusing server must not turn the client into a busy loop
                continue
            answered = time.perf_counter()
            if began >= window_start:
                tally.latencies.append(answered - began)
                tally.statuses[status] += 1
                tally.last_answer = answered
    finally:
        client.close()


def load(base_url: str, paths: list[str], *, headers: dict[str, str] | None = None, concurrency: int = 16,
         duration: float = 10.0, warmup: float = 1.0, keep_alive: bool = True,
         timeout: float = 30.0) -> LoadResult:
    """GET ``paths`` in turn from ``concurrency`` connections for ``warmup`` + ``duration`` seconds;
    only requests sent after the warmup are counted. ``keep_alive=False`` sends
    ``Connection: close`` (a new TCP connection per request)."""
    if not paths:
        raise ValueError("give at least one path")
    if concurrency < 1 or duration <= 0 or warmup < 0:
        raise ValueError("concurrency must be >= 1, duration > 0 and warmup >= 0")
    address = _address(base_url)
    sent = _request_headers(headers, keep_alive)
    start = threading.Barrier(concurrency + 1)
    clock = [0.0, 0.0]  # the window, set by this thread just before the barrier opens
    tallies = [_Tally() for _ in range(concurrency)]
    threads = [threading.Thread(target=_drive, name=f"load-{n}", daemon=True,
                                args=(_Client(address, sent, timeout), paths, n, start, clock, tallies[n]))
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    clock[:] = [now + warmup, now + warmup + duration]
    start.wait()
    time.sleep(max(0.0, clock[0] - time.perf_counter()))
    server_cpu = _server_cpu(base_url)
    client_cpu = time.process_time()
    for thread in threads:
        thread.join(timeout=duration + warmup + timeout + 10)
    client_cpu = time.process_time() - client_cpu
    server_after = _server_cpu(base_url)

    latencies = [x for t in tallies for x in t.latencies]
    statuses: Counter[int] = Counter()
    for t in tallies:
        statuses.update(t.statuses)
    last = max((t.last_answer for t in tallies), default=0.0)
    elapsed = max(last - clock[0], duration) if latencies else duration
    return LoadResult(**_latency(latencies, statuses, sum(t.errors for t in tallies),
                                 [m for t in tallies for m in t.messages]),
                      requests_per_s=len(latencies) / elapsed, elapsed_s=elapsed, concurrency=concurrency,
                      client_cpu=client_cpu / elapsed,
                      server_cpu_ms=(None if server_cpu is None or server_after is None or not latencies
                                     else (server_after - server_cpu) * 1000 / len(latencies)))


def _server_cpu(base_url: str) -> float | None:
    return base_url.cpu_seconds() if isinstance(base_url, ServerURL) else None


def sequential(base_url: str, paths: list[str], headers: dict[str, str] | None = None, n: int = 100, *,
               warmup: int = 3, timeout: float = 30.0) -> Latency:
    """``n`` requests one after the other over one keep-alive connection (after ``warmup``
    uncounted ones): the latency a single user sees, server time plus loopback."""
    if not paths or n < 1:
        raise ValueError("give at least one path and n >= 1")
    client = _Client(_address(base_url), _request_headers(headers, True), timeout)
    tally = _Tally()
    try:
        for i in range(warmup + n):
            began = time.perf_counter()
            try:
                status = client.get(paths[i % len(paths)])
            except (OSError, http.client.HTTPException) as exc:
                if i >= warmup:
                    tally.failed(exc)
                continue
            if i >= warmup:
                tally.latencies.append(time.perf_counter() - began)
                tally.statuses[status] += 1
    finally:
        client.close()
    return Latency(**_latency(tally.latencies, tally.statuses, tally.errors, tally.messages))


# --------------------------------------------------------------------------------------------
# logging in


class LoginFailed(RuntimeError):
    pass


_CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def _cookies(response: http.client.HTTPResponse, jar: dict[str, str]) -> None:
    for header in response.headers.get_all("Set-Cookie") or []:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value


def login(base_url: str, email: str, password: str, *, timeout: float = 30.0) -> dict[str, str]:
    """Log in through the login form (GET for the CSRF token and its session, POST the form) and
    return the headers that carry the session: ``Cookie`` and the ``User-Agent`` it is bound to.
    Enough for GET pages; a write would also need a form's fresh ``csrf_token``."""
    conn = http.client.HTTPConnection(*_address(base_url), timeout=timeout)
    jar: dict[str, str] = {}
    try:
        conn.request("GET", "/login", headers={"User-Agent": USER_AGENT})
        response = conn.getresponse()
        page = response.read().decode("utf-8", "replace")
        if response.status != 200:
            raise LoginFailed(f"GET /login answered {response.status}")
        _cookies(response, jar)
        token = _CSRF_INPUT.search(page)
        if token is None:
            raise LoginFailed("the login page has no csrf_token field")
        form = urlencode({"csrf_token": token.group(1), "email": email, "password": password})
        conn.request("POST", "/login", body=form, headers={
            "User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())})
        response = conn.getresponse()
        response.read()
        location = response.headers.get("Location", "")
        if response.status not in (302, 303) or urlsplit(location).path == "/login":
            raise LoginFailed(f"login as {email} answered {response.status} (expected a redirect into the app)")
        _cookies(response, jar)
    finally:
        conn.close()
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()), "User-Agent": USER_AGENT}


# --------------------------------------------------------------------------------------------
# the server


class ServerFailed(RuntimeError):
    pass


class ServerURL(str):
    """The base URL :func:`served` yields; also knows the server's process group, so that
    :func:`load` can report the server's CPU time per request (the machine's cores are shared with
    the client and whatever else runs: CPU per request is the figure that contention bends least)."""

    pgid: int

    def __new__(cls, url: str, pgid: int) -> ServerURL:
        out = super().__new__(cls, url)
        out.pgid = pgid
        return out

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the master and its workers so far (Linux ``/proc``; else None)."""
        return _group_cpu(self.pgid)


def _group_cpu(pgid: int) -> float | None:
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        # after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
        # cmajflt utime stime ...
        if len(fields) > 12 and int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(address: tuple[str, int]) -> bool:
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        conn.request("GET", "/login", headers={"User-Agent": USER_AGENT})
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def served(instance: Path, database_url: str, *, workers: int = 2, threads: int = 4,
           secret_key: str | None = None, secrets_key: str | None = None, plugins: str | None = "",
           access_log: bool = False, log_file: Path | None = None,
           startup_timeout: float = 60.0) -> Iterator[ServerURL]:
    """Run ``crm serve`` on ``database_url`` (already built: nothing is migrated) and yield its
    base URL once it answers; stop it on exit (SIGTERM, then SIGKILL to its process group).

    The server reads its configuration as any ``crm serve`` does: ``<instance>/crm.toml`` and
    ``CRM_*`` variables. ``secret_key`` / ``secrets_key`` (the harness's ``Config`` values) are
    passed as ``CRM_SECRET_KEY`` / ``CRM_SECRETS_KEY`` so the server signs sessions and decrypts
    plugin secrets with the same keys; without them the instance's ``crm.toml`` must have them
    (``crm init`` writes it). ``plugins`` becomes ``CRM_LOAD_PLUGINS`` (``""``: the core only;
    ``None``: whatever the environment says). The server's output (its error log, and with
    ``access_log`` one line per request) goes to ``log_file`` (default
    ``<instance>/serve.log``), never to the benchmark's stdout."""
    instance = Path(instance).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file is not None else instance / "serve.log"
    port = free_port()
    env = {**os.environ, "CRM_INSTANCE_PATH": str(instance), "CRM_DATABASE_URL": database_url}
    env.pop("CRM_TEST_DATABASE_URL", None)
    if plugins is not None:
        env["CRM_LOAD_PLUGINS"] = plugins
    for name, value in (("CRM_SECRET_KEY", secret_key), ("CRM_SECRETS_KEY", secrets_key)):
        if value:
            env[name] = value
    # the database URL travels in the environment, not the command line (`ps` shows arguments)
    command = [sys.executable, "-m", "crmcore.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads),
               "--access-log" if access_log else "--no-access-log"]
    with open(log_file, "ab") as log:
        server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _answers(("127.0.0.1", port)):
            if server.poll() is not None:
                raise ServerFailed(f"crm serve exited with {server.returncode}:\n{_tail(log_file)}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"crm serve did not answer within {startup_timeout:.0f} s:\n{_tail(log_file)}")
            time.sleep(0.2)
        yield ServerURL(f"http://127.0.0.1:{port}", server.pid)
    finally:
        _stop(server)


def _stop(server: subprocess.Popen, grace: float = 20.0) -> None:
    """Gunicorn's graceful stop (SIGTERM); if it hangs, kill the whole group it leads (its
    workers too: they are in the session this module started for it)."""
    if server.poll() is None:
        server.terminate()
        with suppress(subprocess.TimeoutExpired):
            server.wait(timeout=grace)
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # workers left behind by a master that hung or died
    server.wait(timeout=10)
