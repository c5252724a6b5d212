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


def serve(app: Any, *, host: str, port: int, workers: int, threads: int = 4, timeout: int = 60) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "accesslog": "-",
        "errorlog": "-",
        "preload_app": False,
        # the app (and its engine) is built before the fork: each worker drops the inherited
        # connection pool and opens its own connections
        "post_fork": lambda _server, _worker: app.extensions["crm"].db.engine.dispose(close=False),
    }
    CrmServer(app, options).run()
