"""Copy this template to a new plugin with every name changed.

    python rename.py crm-acme-widgets ../crm-acme-widgets

From the distribution name ``crm-acme-widgets`` it derives the import package
(``crm_acme_widgets``), the plugin id (``acme-widgets``: the entry-point name, also in its version
table ``alembic_version_acme_widgets``), the table prefix (``acme_widgets_``), the class prefix
(``AcmeWidgets``) and the title (``Acme widgets``), and writes them into file contents and file
and folder names. Standard library only.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".hypothesis", "rename.py",
                              "test_rename.py", "README.md")
README = """# {dist}

A crmcore plugin (plugin id `{plugin_id}`). Say here what it does, its settings and how to use it.

```
pip install -e .            # into the environment where crmcore is installed
crm db upgrade              # creates its tables
pytest                      # CRM_TEST_DATABASE_URL=postgresql://... pytest on PostgreSQL
```
"""


def replacements(dist: str) -> list[tuple[str, str]]:
    """(old, new) pairs, longest first so a longer name is never half-replaced."""
    plugin_id = dist.removeprefix("crm-")
    ident = plugin_id.replace("-", "_")
    words = plugin_id.split("-")
    return [
        ("crm-plugin-template", dist),
        ("crm_plugin_template", dist.replace("-", "_")),
        ("plugin-template", plugin_id),
        ("plugin_template", ident),
        ("PluginTemplate", "".join(w.capitalize() for w in words)),
        ("Plugin template", " ".join(words).capitalize()),
    ]


def rewrite(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not NAME_RE.match(argv[0]) or argv[0].removeprefix("crm-") in ("", "plugin-template"):
        print("usage: python rename.py NAME TARGET_FOLDER", file=sys.stderr)
        print("NAME: lowercase letters, digits and hyphens, e.g. crm-acme-widgets", file=sys.stderr)
        return 2
    dist, target = argv[0], Path(argv[1])
    if target.exists():
        print(f"{target} exists; choose a new folder", file=sys.stderr)
        return 1
    pairs = replacements(dist)
    shutil.copytree(HERE, target, ignore=SKIP)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            path.write_text(rewrite(path.read_text(encoding="utf-8"), pairs), encoding="utf-8")
        renamed = rewrite(path.name, pairs)
        if renamed != path.name:
            path.rename(path.with_name(renamed))
    (target / "README.md").write_text(README.format(dist=dist, plugin_id=pairs[2][1]), encoding="utf-8")
    print(f"created {target} (package {dist.replace('-', '_')}, plugin id {pairs[2][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
