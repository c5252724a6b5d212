"""Running migrations: the core's first, then each installed plugin's, in dependency order.

Every migration set keeps its own version table (``alembic_version`` for the core,
``alembic_version_<plugin>`` for a plugin), so uninstalling a plugin never leaves the core unable
to migrate. Sets are run programmatically (no ``env.py`` needed in a plugin): a plugin ships a
package with a ``versions/`` folder of ordinary Alembic revision files and names it in
``PluginInfo.migrations``. SQLite ALTERs run in batch mode. On PostgreSQL an advisory lock keeps
two processes from upgrading at once.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from crmcore.errors import CrmError

log = logging.getLogger("crmcore.migrations")

CORE_VERSION_TABLE = "alembic_version"
_ADVISORY_LOCK_ID = 0x43524D  # "CRM"


@dataclass(frozen=True)
class MigrationSet:
    name: str  # "core" or the plugin id
    location: Path
    version_table: str
    metadata: Any = None


def version_table_for(plugin: str) -> str:
    return "alembic_version_" + "".join(c if c.isalnum() else "_" for c in plugin.lower())


def core_set() -> MigrationSet:
    from crmcore.db import Base, import_models

    import_models()
    return MigrationSet("core", Path(__file__).parent, CORE_VERSION_TABLE, Base.metadata)


def resolve_location(spec: str) -> Path:
    """A dotted package (``my_plugin.migrations``) or a folder path holding ``versions/``."""
    path = Path(spec)
    if not path.is_dir():
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise CrmError(f"migrations {spec!r}: cannot import: {exc}") from exc
        path = Path(next(iter(module.__path__)))
    if not (path / "versions").is_dir():
        raise CrmError(f"migrations {spec!r}: no versions/ folder in {path}")
    return path


def plugin_sets(registry: Any) -> list[MigrationSet]:
    """Migration sets of loaded plugins, in registration (= dependency) order."""
    out = []
    for name, plugin in registry.plugins.items():
        if plugin.info.migrations:
            out.append(MigrationSet(name, resolve_location(plugin.info.migrations),
                                    version_table_for(name), plugin.info.metadata))
    return out


def _script(mset: MigrationSet) -> ScriptDirectory:
    return ScriptDirectory(str(mset.location), version_locations=[str(mset.location / "versions")])


def current_revision(engine: Engine, mset: MigrationSet) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": mset.version_table})
        return context.get_current_revision()


def head_revision(mset: MigrationSet) -> str | None:
    return _script(mset).get_current_head()


def _run(engine: Engine, mset: MigrationSet, destination: str) -> tuple[str | None, str | None]:
    script = _script(mset)

    def do_upgrade(revision: Any, context: Any) -> Any:
        return script._upgrade_revs(destination, revision)

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": mset.version_table,
                "render_as_batch": conn.dialect.name == "sqlite",
                "target_metadata": mset.metadata,
                "fn": do_upgrade,
                "transactional_ddl": True,
            },
        )
        before = context.get_current_revision()
        with Operations.context(context):
            context.run_migrations()
        after = context.get_current_revision()
    return before, after


def upgrade(engine: Engine, registry: Any | None = None, *, include_plugins: bool = True) -> list[tuple[str, str | None, str | None]]:
    """Upgrade the core, then every installed plugin with migrations. Returns (set, from, to)."""
    results = [("core", *_run(engine, core_set(), "heads"))]
    if include_plugins and registry is not None:
        for mset in plugin_sets(registry):
            results.append((mset.name, *_run(engine, mset, "heads")))
    for name, before, after in results:
        if before != after:
            log.info("migrated %s: %s -> %s", name, before or "(empty)", after)
    return results


def status(engine: Engine, registry: Any | None = None) -> list[tuple[str, str | None, str | None]]:
    """(set, current revision, head revision) for the core and each plugin."""
    sets = [core_set(), *(plugin_sets(registry) if registry is not None else [])]
    return [(m.name, current_revision(engine, m), head_revision(m)) for m in sets]
