"""The core's party features as a default plugin (registered like any other)."""

from crmcore.plugins.info import PluginInfo

PLUGIN = PluginInfo(title="Parties (core)", version="1.0", essential=True)
