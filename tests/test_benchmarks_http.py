"""The HTTP benchmark's server and client against a real ``crm serve``: what they count must be
true (answers, non-2xx, failures), whatever the timings are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.http import LoginFailed, load, login, sequential, served
from crmcore.auth.service import create_api_token
from crmcore.config import Config
from crmcore.runtime import Crm

EMAIL = "owner@bench.example"
PASSWORD = "benchmark password"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """An instance made by ``crm init`` (owner + business) and an API token of that owner."""
    path = tmp_path_factory.mktemp("bench") / "instance"
    env = {**os.environ, "CRM_LOAD_PLUGINS": ""}
    env.pop("CRM_TEST_DATABASE_URL", None)
    env.pop("CRM_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "crmcore.cli", "--instance", str(path), "init",
                    "--owner-email", EMAIL, "--owner-password", PASSWORD, "--business", "bench"],
                   check=True, env=env, capture_output=True, timeout=120)
    url = f"sqlite:///{path / 'crm.sqlite'}"
    crm = Crm.from_config(Config.load(path, env={}, database_url=url))
    try:
        with crm.context("bench", EMAIL) as ctx:
            _row, token = create_api_token(ctx, "benchmark")
    finally:
        crm.db.dispose()
    return path, url, token


@pytest.fixture(scope="module")
def base_url(instance: tuple[Path, str, str]):
    path, url, _token = instance
    with served(path, url, workers=1, threads=2) as base:
        yield base


def test_load_counts_answered_requests(base_url: str, instance: tuple[Path, str, str]):
    auth = {"Authorization": f"Bearer {instance[2]}"}
    result = load(base_url, ["/api/v1/parties", "/api/v1/parties?limit=5"], headers=auth, concurrency=4,
                  duration=1.0, warmup=0.3)
    assert result.ok, result.summary()
    assert result.count > 10 and result.statuses == {200: result.count}
    assert result.requests_per_s == pytest.approx(result.count / result.elapsed_s)
    assert 0 < result.median_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    assert result.concurrency == 4 and result.client_cpu > 0
    if sys.platform == "linux":  # read from /proc: the server's processes worked for these answers
        assert result.server_cpu_ms is not None and result.server_cpu_ms > 0
    log = (instance[0] / "serve.log").read_text()
    assert "1 workers x 2 threads" in log  # `crm serve --threads`
    assert "GET /api/v1/parties" not in log and "Control socket" not in log  # --no-access-log, no ctl socket


def test_load_reports_every_non_2xx(base_url: str, instance: tuple[Path, str, str]):
    missing = load(base_url, ["/api/v1/no-such-thing"], headers={"Authorization": f"Bearer {instance[2]}"},
                   concurrency=2, duration=0.5, warmup=0.0)
    assert missing.count > 0 and missing.non_2xx == missing.count and not missing.ok
    assert set(missing.statuses) == {404}
    unauthorized = load(base_url, ["/api/v1/parties"], concurrency=2, duration=0.5, warmup=0.0,
                        keep_alive=False)
    assert set(unauthorized.statuses) == {401} and "401" in unauthorized.summary()
    # a page without a session is a redirect to the login form: counted as non-2xx, not as served
    redirected = sequential(base_url, ["/parties/"], n=3)
    assert redirected.statuses == {302: 3} and not redirected.ok


def test_connection_failures_are_errors():
    from benchmarks.http import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    result = load(closed, ["/"], concurrency=2, duration=0.3, warmup=0.0)
    assert result.count == 0 and result.errors > 0 and result.error_samples and not result.ok
    assert sequential(closed, ["/"], n=2, warmup=0).errors == 2


def test_login_then_list_page(base_url: str):
    headers = login(base_url, EMAIL, PASSWORD)
    assert "crm_session=" in headers["Cookie"]
    page = sequential(base_url, ["/parties/", "/parties/?sort=name"], headers, n=6)
    assert page.ok and page.statuses == {200: 6}, page.summary()
    with pytest.raises(LoginFailed):
        login(base_url, EMAIL, "not the password")
