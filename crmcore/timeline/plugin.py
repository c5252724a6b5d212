"""The core's timeline features (notes, attachments, reminders, my actions) as a default plugin."""

from crmcore.plugins.info import PluginInfo

PLUGIN = PluginInfo(title="Timeline (core)", version="1.0", essential=True)
