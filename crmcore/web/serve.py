"""``crm serve``: the app under gunicorn (pre-fork workers; SQLite in WAL mode serves several)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class CrmServer(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def serve(app: Any, *, host: str, port: int, workers: int, threads: int = 4, timeout: int = 60,
          access_log: bool = True, with_worker: bool = False) -> None:
    """Run ``app`` until stopped. Each worker serves ``threads`` requests at once and keeps idle
    HTTP/1.1 connections open for a few seconds (gthread keep-alive). ``access_log`` writes one
    line per request to stdout; leave it off behind a proxy that logs requests already."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "preload_app": False,
        # recent gunicorn otherwise opens a control socket at one path per user
        # (~/.gunicorn/gunicorn.ctl): a second server on the machine takes it over; nothing here uses it
        "control_socket_disable": True,
        # the app (and its engine) is built before the fork: each worker drops the inherited
        # connection pool and opens its own connections
        "post_fork": lambda _server, _worker: app.extensions["crm"].db.engine.dispose(close=False),
    }
    if with_worker:  # an outbox worker thread in each worker process (SQLite: one runs, the rest stand by)
        from crmcore.outbox.worker import gunicorn_hooks

        options.update(gunicorn_hooks(app))
    CrmServer(app, options).run()
