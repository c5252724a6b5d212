"""``Crm``: the running installation (configuration, database, plugin registry) in one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from crmcore.config import Config
from crmcore.db import Database
from crmcore.plugins.manager import PluginRegistry, get_registry


@dataclass
class Crm:
    config: Config
    db: Database
    registry: PluginRegistry = field(default_factory=get_registry)

    @classmethod
    def from_config(cls, config: Config, registry: PluginRegistry | None = None) -> Crm:
        return cls(config=config, db=Database(config.database_url), registry=registry or get_registry())

    def context(self, business: str | int, user: str | int | None = None, *, system: bool = False):
        """Open a :class:`~crmcore.context.Context` for ``business`` acting as ``user``."""
        from crmcore.context import Context

        return Context.open(self, business, user, system=system)
