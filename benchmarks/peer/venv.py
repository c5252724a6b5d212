"""The peer's own virtualenv: made on first use, outside the project, from ``requirements.txt``.

The peer (Django-CRM 0.9.0) needs Django 3.2 and PyJWT 1.x, which must never meet the project's
environment, so it lives under a cache folder (default ``~/.cache/crmcore-bench/peer-venv``,
``$XDG_CACHE_HOME`` respected). A marker in the venv holds a digest of the requirements and the
Python version: when either changes, pip installs again.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
MARKER = ".crmcore-peer-requirements"


def default_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "crmcore-bench" / "peer-venv"


def digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()


def python_of(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_current(path: Path) -> bool:
    """Whether the venv at ``path`` was installed from the current requirements on this Python."""
    marker = path / MARKER
    return python_of(path).exists() and marker.exists() and marker.read_text().strip() == digest()


def ensure(path: Path | None = None) -> Path:
    """The peer venv's interpreter, creating or updating the venv first when needed."""
    path = Path(path) if path is not None else default_path()
    if is_current(path):
        return python_of(path)
    if not python_of(path).exists():
        print(f"creating the peer's virtualenv in {path} (once)", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python_of(path)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(REQUIREMENTS)], check=True)
    (path / MARKER).write_text(digest())
    return python_of(path)
