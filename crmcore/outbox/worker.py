"""The outbox worker (``crm worker``): claim due rows in batches, run each within its timeout,
record the outcomes, prune finished rows.

One loop, the same on both databases:

1. **claim** up to ``batch`` due rows with one ``UPDATE ... RETURNING``
   (:func:`crmcore.outbox.service.claim_due`; PostgreSQL adds ``FOR UPDATE SKIP LOCKED``, so any
   number of workers on any number of machines share the rows, none waiting for another). Each
   claimed row is leased for its job timeout plus a margin: a worker killed with ``kill -9``
   loses nothing, its rows are claimed again when their lease ends;
2. **run** the jobs on ``concurrency`` runner threads, which take the batch's rows themselves
   (this thread only watches the deadlines and flushes the outcomes). A job still running at its
   timeout is abandoned (Python cannot stop a thread: it finishes, or hangs, on its own, and its
   late result is dropped), recorded as failed, and a fresh runner takes its place, so one
   hanging provider never holds the worker. A job is only started while the margin lasts (so it
   ends within its lease); the rest of the batch is handed back;
3. **record** outcomes with one statement per flush (every quarter second and at the end of
   the batch), fenced by the attempt number;
4. **prune** done and discarded rows past the retention, in batches, every
   ``outbox_prune_interval`` seconds (PostgreSQL: then ``VACUUM`` the table, at most every
   ``outbox_vacuum_interval`` seconds, so its file stays small even where autovacuum lags).

SQLite allows one writer, and one worker: the worker holds an exclusive ``flock`` on a file beside
the database (released by the kernel however the process ends, so a restarted worker takes over
at once); a second worker stands by, says so, and takes over when the first stops.

SIGTERM or SIGINT (``crm worker``) stops taking new jobs; the jobs running finish (within their
timeout), unstarted rows of the batch are handed back, outcomes are recorded, then it exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from crmcore.outbox.models import OutboxStatus
from crmcore.outbox.service import (
    Outcome,
    _instance_secrets,
    claim_due,
    execute,
    handlers,
    job_timeout,
    prune,
    record,
    redact,
    release,
    timed_out,
    vacuum,
    waker,
)

if TYPE_CHECKING:
    from crmcore.outbox.service import Job
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore.outbox.worker")

#: outcomes are written at least this often (seconds) while a batch runs
FLUSH_EVERY = 0.25
#: a job starts only if it can end this long (at most; half the margin when that is shorter)
#: before its lease does: time to record its outcome
LEASE_SAFETY = 1.0
#: a runner closes the contexts it keeps after this many idle seconds
IDLE_CLOSE = 1.0


# --------------------------------------------------------------------------------------------
# one worker at a time on SQLite


_MEMORY_LOCKS: dict[str, threading.Lock] = {}


class WorkerLock:
    """Who may run: on PostgreSQL every worker; on SQLite the one holding an exclusive lock on
    ``<database>.worker-lock`` (an in-memory database: a lock in this process)."""

    def __init__(self, crm: Crm, name: str) -> None:
        url = crm.db.engine.url
        self.name = name
        self.exclusive = url.get_backend_name() == "sqlite"
        self.path: Path | None = None
        self._file: Any = None
        self._memory: threading.Lock | None = None
        self.held = not self.exclusive
        if self.exclusive:
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file::memory:"):
                self.path = Path(database).resolve().with_name(Path(database).name + ".worker-lock")
            else:
                self._memory = _MEMORY_LOCKS.setdefault(str(url), threading.Lock())

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._memory is not None:
            self.held = self._memory.acquire(blocking=False)
            return self.held
        assert self.path is not None
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            _lock_file(handle)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.name}\n")
        handle.flush()
        self._file, self.held = handle, True
        return True

    def holder(self) -> str:
        """Who holds the lock, as it wrote itself into the file ("host:pid")."""
        if self.path is None:
            return "another worker in this process"
        try:
            return self.path.read_text().strip() or "another worker"
        except OSError:
            return "another worker"

    def release(self) -> None:
        if not self.held or not self.exclusive:
            return
        self.held = False
        if self._memory is not None:
            self._memory.release()
        elif self._file is not None:
            try:
                self._file.seek(0)
                self._file.truncate()
                _unlock_file(self._file)
            finally:
                self._file.close()
                self._file = None


try:
    import fcntl

    def _lock_file(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock_file(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


# --------------------------------------------------------------------------------------------
# reports


@dataclass
class BatchReport:
    """What one batch did (logged as one line; never a payload or an error text)."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    parked: int = 0
    discarded: int = 0
    timed_out: int = 0
    released: int = 0
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.status.value, getattr(self, outcome.status.value) + 1)

    def line(self) -> str:
        parts = [f"{self.done} done"]
        for name in ("failed", "parked", "discarded", "timed_out", "released"):
            value = getattr(self, name)
            if value:
                parts.append(f"{value} {'handed back' if name == 'released' else name.replace('_', ' ')}")
        return f"{self.claimed} claimed: {', '.join(parts)} ({self.seconds * 1000:.0f} ms)"


@dataclass
class Totals(BatchReport):
    """A worker's counts since it started."""

    batches: int = 0
    pruned: int = 0

    def add(self, report: BatchReport) -> None:
        self.batches += 1 if report.claimed else 0
        for f in fields(BatchReport):
            setattr(self, f.name, getattr(self, f.name) + getattr(report, f.name))


# --------------------------------------------------------------------------------------------
# runner threads


@dataclass
class _Job:
    message: Job
    deadline: float
    timeout: float


class _Batch:
    """The claimed rows the runners take from, and the outcomes they leave (under the worker's
    condition lock)."""

    def __init__(self, messages: list[Job], start_until: float, generation: int) -> None:
        self.waiting: deque[Job] = deque(messages)
        self.outcomes: list[Outcome] = []
        self.start_until = start_until
        self.generation = generation
        self.stopping = False

    def may_start(self) -> bool:
        return bool(self.waiting) and not self.stopping and time.monotonic() <= self.start_until


class _Runner(threading.Thread):
    """Takes the batch's rows one after the other and runs them (no hand-over per job: the
    worker's thread only watches the deadlines). Abandoned when a job outlives its timeout: it
    then drops that job's result and ends when (if) the handler returns."""

    def __init__(self, worker: Worker, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.worker = worker
        self.current: _Job | None = None
        self.abandoned = False
        self.closed = False
        #: the batch whose end this runner announced already
        self.told = -1

    def run(self) -> None:
        worker, cond = self.worker, self.worker._cond
        contexts: dict[Any, Any] = {}
        generation = None
        try:
            while True:
                idle = False
                with cond:
                    while True:
                        if self.abandoned or self.closed:
                            return
                        batch = worker._batch
                        if batch is not None and batch.may_start():
                            message = batch.waiting.popleft()
                            timeout = job_timeout(worker.crm.config, message.kind)
                            job = self.current = _Job(message, time.monotonic() + timeout, timeout)
                            break
                        if batch is not None and self.told != batch.generation:
                            self.told = batch.generation  # once per batch (idle runners must not
                            cond.notify_all()  # wake each other in turn): nothing to start here
                        if not cond.wait(IDLE_CLOSE):
                            idle = True
                            break
                if idle:  # a quiet moment: let the contexts (and their connections) go
                    _close(contexts)
                    continue
                if batch.generation != generation:  # a new batch: contexts of the last one go
                    _close(contexts)
                    generation = batch.generation
                outcome = _execute(worker.crm, job, contexts)
                with cond:
                    if self.abandoned:
                        log.warning("outbox job %s (%s) returned %.1f s after its timeout; its result was "
                                    "dropped", job.message.id, job.message.kind, time.monotonic() - job.deadline)
                        return
                    self.current = None
                    batch.outcomes.append(outcome)
                    if not batch.may_start():
                        cond.notify_all()
        finally:
            _close(contexts)


def _execute(crm: Crm, job: _Job, contexts: dict) -> Outcome:
    try:
        return execute(crm, job.message, contexts=contexts, deadline=job.deadline)
    except Exception as exc:  # execute records a job's failure itself; this is the worker's own
        log.exception("outbox job %s could not be run", job.message.id)
        return Outcome(job.message.id, job.message.attempts, OutboxStatus.FAILED,
                       f"the worker failed to run the job: {type(exc).__name__}")


def _close(contexts: dict) -> None:
    for ctx in contexts.values():
        try:
            ctx.close()
        except Exception:  # a broken connection must not stop the runner
            log.debug("closing a job context failed", exc_info=True)
    contexts.clear()


# --------------------------------------------------------------------------------------------
# the worker


@dataclass(eq=False)
class Worker:
    """Claims and runs outbox rows until stopped. ``run()`` in ``crm worker``; in a thread with
    :func:`start_worker_thread` (``crm serve --with-worker``, ``crm demo``)."""

    crm: Crm
    batch: int = 100
    poll: float = 1.0
    concurrency: int = 1
    name: str = ""
    prune: bool = True
    totals: Totals = field(default_factory=Totals)

    def __post_init__(self) -> None:
        if self.batch < 1 or self.concurrency < 1 or self.poll <= 0:
            raise ValueError("batch and concurrency must be at least 1, poll above 0")
        self.name = self.name or f"{socket.gethostname()}:{os.getpid()}"
        self.lock = WorkerLock(self.crm, self.name)
        self._stop = threading.Event()
        self._wake = waker()
        self._cond = threading.Condition()
        self._batch: _Batch | None = None
        self._runners: list[_Runner] = []
        self._abandoned: list[_Runner] = []
        self._runner_seq = 0
        self._generation = 0

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the jobs running now (unstarted rows of the batch are handed back)."""
        self._stop.set()
        self._wake.set()
        with self._cond:
            if self._batch is not None:
                self._batch.stopping = True
            self._cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()

    # -- the loop --------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> Totals:
        """Work until :meth:`stop` (or, with ``once``, until no row is due). On SQLite, first
        wait for the worker lock if another worker holds it."""
        if not self._acquire():
            return self.totals
        config = self.crm.config
        kinds = ", ".join(h.kind + (f" ({h.timeout:g} s)" if h.timeout else "") for h in handlers())
        log.info("outbox worker %s started on %s (batch %d, concurrency %d, poll %g s, job timeout %g s; "
                 "kinds: %s)", self.name, self.crm.db.engine.url.render_as_string(hide_password=True),
                 self.batch, self.concurrency, self.poll, config.outbox_job_timeout, kinds)
        next_prune = next_vacuum = time.monotonic()
        next_task: dict[str, float] = {}
        unvacuumed = 0
        errors = 0
        try:
            while not self._stop.is_set():
                try:
                    if self.prune and time.monotonic() >= next_prune:
                        pruned = prune(self.crm)
                        next_prune = time.monotonic() + float(config.outbox_prune_interval)
                        self.totals.pruned += pruned
                        unvacuumed += pruned
                        if pruned:
                            log.info("pruned %d finished outbox rows older than %g s", pruned,
                                     config.outbox_retention)
                        if unvacuumed and config.outbox_vacuum_interval and time.monotonic() >= next_vacuum:
                            if vacuum(self.crm):
                                log.debug("vacuumed the outbox table after pruning %d rows", unvacuumed)
                            unvacuumed = 0
                            next_vacuum = time.monotonic() + float(config.outbox_vacuum_interval)
                    if self.prune:
                        self._run_periodic(next_task)
                    report = self.run_batch()
                    errors = 0
                except SQLAlchemyError as exc:
                    if once:
                        raise
                    errors += 1
                    delay = min(30.0, self.poll * 2 ** errors)
                    reason = redact(str(getattr(exc, "orig", None) or exc).splitlines()[0],
                                    _instance_secrets(self.crm))
                    log.error("database error (%s: %s); trying again in %.0f s", type(exc).__name__, reason, delay)
                    self._sleep(delay)
                    continue
                self.totals.add(report)
                if report.claimed:
                    log.info("%s", report.line())
                if self._stop.is_set():
                    break
                if report.claimed >= self.batch or report.released:
                    continue  # a full batch, or rows handed back: there is more due now
                if once and report.claimed == 0:
                    break
                if report.claimed == 0:
                    self._sleep(self.poll)
        finally:
            self._shutdown()
            self.lock.release()
            t = self.totals
            log.info("outbox worker %s stopped: %d batches, %d claimed, %d done, %d failed, %d parked, "
                     "%d discarded, %d timed out, %d pruned", self.name, t.batches, t.claimed, t.done,
                     t.failed, t.parked, t.discarded, t.timed_out, t.pruned)
        return self.totals

    def _run_periodic(self, next_task: dict[str, float]) -> None:
        """Run the registered periodic tasks that are due; one failing task is logged (redacted)
        and tried again at its next turn, never stopping the worker or the other tasks."""
        from crmcore.outbox.service import PERIODIC

        now = time.monotonic()
        for name, (fn, interval) in list(PERIODIC.items()):
            if now < next_task.get(name, 0.0):
                continue
            next_task[name] = now + interval
            try:
                handled = fn(self.crm)
            except Exception as exc:  # a task's failure must not stop the outbox
                log.warning("periodic task %s failed: %s", name,
                            redact(f"{type(exc).__name__}: {exc}", _instance_secrets(self.crm)))
                continue
            if handled:
                log.info("periodic task %s handled %d rows", name, handled)

    def _acquire(self) -> bool:
        if self.lock.try_acquire():
            return True
        log.warning("outbox worker %s: another worker (%s) runs the outbox of this SQLite database; "
                    "SQLite allows one at a time, so this one stands by and takes over when it stops",
                    self.name, self.lock.holder())
        while not self._stop.is_set():
            self._sleep(min(self.poll, 1.0))
            if self.lock.try_acquire():
                log.info("outbox worker %s took over", self.name)
                return True
        return False

    def run_batch(self) -> BatchReport:
        """Claim one batch, run it, record it. (``run`` calls this in a loop; on SQLite it holds
        the worker lock first.)"""
        report = BatchReport()
        started = time.monotonic()
        messages = claim_due(self.crm, self.batch)
        report.claimed = len(messages)
        if not messages:
            return report
        # a row's lease is its timeout plus the margin: a job may start while the margin lasts
        margin = float(self.crm.config.outbox_lease_margin)
        self._generation += 1
        batch = _Batch(messages, started + margin - min(LEASE_SAFETY, margin / 2), self._generation)
        cond = self._cond
        with cond:
            batch.stopping = self._stop.is_set()
            self._batch = batch
            self._start_runners()
            cond.notify_all()
        last_flush = time.monotonic()
        try:
            while True:
                replace = 0
                with cond:
                    now = time.monotonic()
                    busy = [r for r in self._runners if r.current is not None]
                    for runner in busy:
                        job = runner.current
                        if job is not None and job.deadline <= now:
                            runner.abandoned = True
                            self._runners.remove(runner)
                            self._abandoned.append(runner)
                            batch.outcomes.append(timed_out(self.crm, job.message, job.timeout))
                            report.timed_out += 1
                            replace += 1
                    busy = [r for r in self._runners if r.current is not None]
                    finished = not busy and not batch.may_start()
                    flush = finished or now - last_flush >= FLUSH_EVERY
                    outcomes = batch.outcomes if flush else []
                    if flush:
                        batch.outcomes = []
                    if replace:
                        self._start_runners()
                        self._check_abandoned()
                        cond.notify_all()
                    if not finished and not flush:
                        deadlines = [r.current.deadline for r in busy if r.current is not None]
                        cond.wait(max(0.0, min([last_flush + FLUSH_EVERY, *deadlines]) - now))
                        continue
                if outcomes:
                    self._record(outcomes, report)
                last_flush = time.monotonic()
                if finished:
                    break
        except BaseException:
            with cond:  # interrupted: running jobs' rows come back when their lease ends
                batch.stopping = True
                for runner in self._runners:
                    if runner.current is not None:
                        runner.abandoned = True
                        log.warning("outbox job %s abandoned: the worker was interrupted", runner.current.message.id)
                self._runners = [r for r in self._runners if not r.abandoned]
            raise
        finally:
            with cond:
                self._batch = None
                waiting, batch.waiting = list(batch.waiting), deque()
                outcomes, batch.outcomes = batch.outcomes, []
            try:
                if waiting:
                    release(self.crm, waiting)
                    report.released += len(waiting)
            finally:
                self._record(outcomes, report)
                report.seconds = time.monotonic() - started
        return report

    def _record(self, outcomes: list[Outcome], report: BatchReport) -> None:
        if outcomes:
            record(self.crm, outcomes)
            for outcome in outcomes:
                report.count(outcome)

    def _start_runners(self) -> None:
        """Runners up to ``concurrency`` (called with the condition held)."""
        while len(self._runners) < self.concurrency:
            self._runner_seq += 1
            runner = _Runner(self, f"outbox-runner-{self._runner_seq}")
            self._runners.append(runner)
            runner.start()

    def _check_abandoned(self) -> None:
        self._abandoned = [r for r in self._abandoned if r.is_alive()]
        if len(self._abandoned) > 4 * self.concurrency:
            log.error("%d outbox handler threads are still running past their timeout: a handler "
                      "ignores its deadline (give network calls a timeout)", len(self._abandoned))

    def _shutdown(self) -> None:
        with self._cond:
            runners, self._runners = self._runners, []
            for runner in runners:
                runner.closed = True
            self._cond.notify_all()
        for runner in runners:
            runner.join(timeout=5)


# --------------------------------------------------------------------------------------------
# in-process


class WorkerThread(threading.Thread):
    """A worker in a daemon thread of a web process: the embedded default needs one command."""

    def __init__(self, crm: Crm, **options: Any) -> None:
        super().__init__(name="outbox-worker", daemon=True)
        options.setdefault("name", f"{socket.gethostname()}:{os.getpid()}:thread")
        self.worker = Worker(crm, **options)

    def run(self) -> None:
        try:
            self.worker.run()
        except Exception:  # the web process keeps serving; the log says why jobs stopped
            log.exception("the in-process outbox worker stopped")

    def stop(self, timeout: float | None = 10.0) -> None:
        self.worker.stop()
        self.join(timeout)


def start_worker_thread(crm: Crm, **options: Any) -> WorkerThread:
    thread = WorkerThread(crm, **options)
    thread.start()
    return thread


def gunicorn_hooks(app: Any, **options: Any) -> dict[str, Any]:
    """Server hooks that run a worker thread in every gunicorn worker process (started after the
    fork, stopped when the process exits). On SQLite one of them runs, the others stand by."""

    def post_worker_init(worker: Any) -> None:
        worker.crm_outbox_thread = start_worker_thread(app.extensions["crm"], **options)

    def worker_exit(_server: Any, worker: Any) -> None:
        thread = getattr(worker, "crm_outbox_thread", None)
        if thread is not None:
            thread.stop()

    return {"post_worker_init": post_worker_init, "worker_exit": worker_exit}


def configure_logging(level: int = logging.INFO) -> None:
    """One line per batch on stderr, unless the application configured logging itself."""
    logger = logging.getLogger("crmcore.outbox")
    if logger.handlers or logging.getLogger().handlers:
        logger.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


__all__ = ["BatchReport", "Totals", "Worker", "WorkerLock", "WorkerThread", "configure_logging",
           "gunicorn_hooks", "start_worker_thread"]
