"""The core's record features as a default plugin (registered like any other)."""

from crmcore.plugins.info import PluginInfo

PLUGIN = PluginInfo(title="Records (core)", version="1.0", essential=True)
