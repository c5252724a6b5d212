"""Installing and uninstalling the quoting plugin for real (a copy of crm-example-plugin's
test_install.py): ``crm`` in subprocesses, the plugin present
as a non-editable install and then truly absent from the environment.

How the environments are built (the fastest real way): the editable development install of this
plugin lives in the same site-packages as crmcore and its dependencies, so a subprocess cannot
simply "not see" it. Each subprocess therefore starts Python with ``-S`` (no site-packages) and adds
two site directories itself: a *view* of this environment's site-packages (symlinks to every entry
except this plugin's dist-info and editable-install files; ``.pth`` files such as crmcore's own
editable install are processed), and, while "installed", a folder the plugin was installed into
with ``pip install --no-deps --no-build-isolation --target`` from a copy of its source. Removing
that folder is an uninstall: the distribution, its entry points and its code are gone.

On PostgreSQL (``CRM_TEST_DATABASE_URL``) the same run uses a fresh database; otherwise SQLite in
the instance folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PLUGIN_SOURCE = Path(__file__).resolve().parents[1]
SECRETS_KEY = Fernet.generate_key().decode()
BOOT = (
    "import os, site, sys\n"
    "for d in filter(None, sys.argv[1].split(os.pathsep)):\n"
    "    site.addsitedir(d)\n"
    "from crmcore.cli import main\n"
    "main(args=sys.argv[2:], prog_name='crm')\n"
)


def _is_this_plugin(entry_name: str) -> bool:
    name = entry_name.lower().replace("-", "_")
    return "crm_quoting" in name or name.startswith("__editable__.crm_quoting")


@pytest.fixture(scope="module")
def site_view(tmp_path_factory) -> Path:
    """This environment's site-packages without the plugin (symlinks)."""
    view = tmp_path_factory.mktemp("site-without-quoting")
    for site_dir in site.getsitepackages():
        if not os.path.isdir(site_dir):
            continue
        for entry in os.scandir(site_dir):
            target = view / entry.name
            if _is_this_plugin(entry.name) or target.exists():
                continue
            target.symlink_to(entry.path)
    return view


@pytest.fixture
def plugin_site(tmp_path_factory) -> Path:
    """The plugin installed (non-editable) into a folder of its own."""
    root = tmp_path_factory.mktemp("quoting-install")
    source = root / "src"
    shutil.copytree(PLUGIN_SOURCE, source,
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True)
    return target


@pytest.fixture
def database_url(tmp_path):
    """A fresh, empty database: SQLite in tmp_path, or a new PostgreSQL database."""
    pg = os.environ.get("CRM_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path / 'instance' / 'crm.sqlite'}"
        return
    url = make_url(pg).set(drivername="postgresql+psycopg")
    name = f"crm_quoting_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def crm(tmp_path: Path, database_url: str, site_dirs: list[Path] | None, *args: str) -> subprocess.CompletedProcess:
    """Run ``crm`` with only ``site_dirs`` as site-packages (None: this environment as it is)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PYTHON"))}
    env["CRM_SECRETS_KEY"] = SECRETS_KEY  # as `crm init` would write into crm.toml
    python = [sys.executable, "-S", "-c", BOOT, os.pathsep.join(map(str, site_dirs))] if site_dirs is not None \
        else [sys.executable, "-c", BOOT, ""]
    return subprocess.run(
        [*python, "--instance", str(tmp_path / "instance"), "--database", database_url, *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def query(database_url: str, sql: str) -> list[tuple]:
    if database_url.startswith("sqlite"):
        with sqlite3.connect(make_url(database_url).database) as conn:
            return conn.execute(sql).fetchall()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_the_view_really_hides_the_plugin(tmp_path, site_view):
    probe = "import importlib.util, importlib.metadata as m, site, sys; site.addsitedir(sys.argv[1]); " \
            "print(importlib.util.find_spec('crm_quoting'), " \
            "sorted(e.name for e in m.entry_points(group='crmcore.plugins')))"
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(site_view)], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    spec, names = result.stdout.split(" ", 1)
    assert spec == "None" and "'quoting'" not in names and "'catalog'" in names


def test_install_migrate_enable_then_uninstall(tmp_path, site_view, plugin_site, database_url):
    installed = [site_view, plugin_site]
    (tmp_path / "instance").mkdir()

    # installed: `crm db upgrade` runs the core's migrations, the catalog's, then quoting's
    out = ok(crm(tmp_path, database_url, installed, "db", "upgrade"))
    assert "quoting: (empty) -> quoting_0001" in out
    assert out.index("catalog:") < out.index("quoting:")
    assert query(database_url, "select version_num from alembic_version_quoting") == [("quoting_0001",)]
    assert query(database_url, "select count(*) from quoting_quotes") == [(0,)]

    ok(crm(tmp_path, database_url, installed, "businesses", "create", "acme", "Acme Equipment"))
    refused = crm(tmp_path, database_url, installed, "plugins", "enable", "quoting", "--business", "acme")
    assert refused.returncode != 0 and "catalog" in refused.stdout + refused.stderr
    ok(crm(tmp_path, database_url, installed, "plugins", "enable", "catalog", "--business", "acme"))
    ok(crm(tmp_path, database_url, installed, "plugins", "enable", "quoting", "--business", "acme",
           "--setting", "validity_days=14"))
    listing = json.loads(ok(crm(tmp_path, database_url, installed, "plugins", "list", "--json")))
    quoting = next(p for p in listing["plugins"] if p["name"] == "quoting")
    assert quoting["distribution"].replace("_", "-") == "crm-quoting"
    assert quoting["enabled_in"] == ["acme"]
    assert "quoting: ok" in crm(tmp_path, database_url, installed, "plugins", "check").stdout

    # uninstalled: the core starts, migrates and lists plugins; quoting is simply absent
    shutil.rmtree(plugin_site)
    out = ok(crm(tmp_path, database_url, [site_view], "db", "upgrade"))
    assert "core: up to date" in out and "quoting" not in out
    listing = json.loads(ok(crm(tmp_path, database_url, [site_view], "plugins", "list", "--json")))
    assert "quoting" not in {p["name"] for p in listing["plugins"]}
    assert "quoting" not in listing["errors"]
    # uninstalling drops nothing: the tables and the version stay for a reinstall
    assert query(database_url, "select version_num from alembic_version_quoting") == [("quoting_0001",)]
    assert query(database_url, "select count(*) from quoting_quote_lines") == [(0,)]
