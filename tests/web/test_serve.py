"""`crm serve` runs the app under gunicorn: a real server, real HTTP, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_crm_serve_answers_over_http(tmp_path: Path):
    crm = [sys.executable, "-m", "crmcore.cli", "--instance", str(tmp_path / "instance")]
    env = {**os.environ, "CRM_LOAD_PLUGINS": ""}
    env.pop("CRM_TEST_DATABASE_URL", None)
    subprocess.run([*crm, "init"], check=True, env=env, capture_output=True, timeout=120)
    port = _free_port()
    server = subprocess.Popen([*crm, "serve", "--port", str(port), "--workers", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                    body = response.read().decode()
                    headers = response.headers
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        assert "Log in" in body
        assert "default-src 'self'" in headers["Content-Security-Policy"]
    finally:
        server.terminate()
        server.wait(timeout=30)
