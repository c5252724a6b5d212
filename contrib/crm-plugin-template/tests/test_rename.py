"""``rename.py`` turns the template into a new plugin with no trace of the old names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


def test_rename_makes_a_complete_new_plugin(tmp_path):
    target = tmp_path / "crm-acme-widgets"
    subprocess.run([sys.executable, str(TEMPLATE / "rename.py"), "crm-acme-widgets", str(target)],
                   check=True, capture_output=True, text=True)
    leftovers = [str(p.relative_to(target)) for p in target.rglob("*")
                 if "template" in p.name.lower() or (p.is_file() and "template" in p.read_text().lower())]
    assert leftovers == []
    assert not (target / "rename.py").exists()
    assert "acme-widgets = crm_acme_widgets.plugin" in (target / "setup.cfg").read_text()
    assert (target / "crm_acme_widgets/migrations/versions/0001_acme_widgets_initial.py").is_file()

    probe = (
        "from alembic.script import ScriptDirectory\n"
        "import crm_acme_widgets.plugin as p, crm_acme_widgets.models as m\n"
        "from crmcore.migrations.runner import resolve_location\n"
        "where = resolve_location(p.PLUGIN.migrations)\n"
        "head = ScriptDirectory(str(where), version_locations=[str(where / 'versions')]).get_current_head()\n"
        "print(p.PLUGIN.title, sorted(m.AcmeWidgetsBase.metadata.tables), head)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "Acme widgets ['acme_widgets_wins'] acme_widgets_0001"


def test_rename_refuses_bad_names_and_existing_folders(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(TEMPLATE / "rename.py"), *args],
                              capture_output=True, text=True)

    assert run("Crm_Bad", str(tmp_path / "x")).returncode == 2
    assert run("crm-plugin-template", str(tmp_path / "x")).returncode == 2
    assert run("crm-ok", str(tmp_path)).returncode == 1
    assert not (tmp_path / "x").exists()
