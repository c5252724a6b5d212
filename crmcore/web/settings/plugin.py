"""The settings pages as a default plugin (registered like any other)."""

from crmcore.plugins.info import PluginInfo

PLUGIN = PluginInfo(title="Settings (core)", version="1.0", essential=True)
