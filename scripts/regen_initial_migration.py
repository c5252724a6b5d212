"""Regenerate the core's initial migration from the models (only until the first release).

Run: python scripts/regen_initial_migration.py
Autogenerates against an empty SQLite database, then makes the output portable: plain DateTime
for our UTC type, and PostgreSQL-only indexes (``ddl_if``) guarded by dialect.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "crmcore" / "migrations" / "versions"


def _pg_only_indexes() -> str:
    """Indexes declared with ``ddl_if(dialect="postgresql")``, which autogenerate on SQLite omits."""
    sys.path.insert(0, str(ROOT))
    from crmcore.db import Base, import_models

    import_models()
    lines = []
    for table in Base.metadata.sorted_tables:
        for index in sorted(table.indexes, key=lambda i: i.name):
            ddl_if = getattr(index, "_ddl_if", None)
            if ddl_if is None or ddl_if.dialect != "postgresql":
                continue
            cols = [c.name for c in index.columns]
            kw = index.dialect_kwargs
            lines.append(
                f"    if op.get_bind().dialect.name == 'postgresql':\n"
                f"        op.create_index({index.name!r}, {table.name!r}, {cols!r}, unique={index.unique}, "
                f"postgresql_using={kw.get('postgresql_using')!r}, postgresql_ops={kw.get('postgresql_ops')!r})\n"
            )
    return "".join(lines)


def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/gen.sqlite"
        subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "crmcore/migrations/alembic.ini"),
                        "-x", "unused=1", "revision", "--autogenerate", "--rev-id", "0001",
                        "-m", "initial core schema"], check=True, cwd=ROOT,
                       env={"PATH": "/usr/bin:/bin", "ALEMBIC_URL": url})
    (path,) = VERSIONS.glob("0001_*.py")
    text = path.read_text()
    text = text.replace("astext_type=Text()", "astext_type=sa.Text()")
    text = re.sub(r"crmcore\.db\.UtcDateTime\([^)]*\)", "sa.DateTime(timezone=True)", text)
    text = text.replace("    # ### end Alembic commands ###\n", _pg_only_indexes() + "    # ### end Alembic commands ###\n", 1)
    text = re.sub(r"^import crmcore.*\n", "", text, flags=re.M)
    # autogenerate emits PostgreSQL-only indexes unconditionally; drop them, _pg_only_indexes adds them guarded
    text = re.sub(r"^ +batch_op\.(create|drop)_index\('[a-z_]*_(gin|pg)'[^\n]*\n", "", text, flags=re.M)
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
