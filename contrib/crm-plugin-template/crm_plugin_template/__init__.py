"""A crmcore plugin: it remembers every deal won."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins`` (setup.cfg)
NAME = "plugin-template"
