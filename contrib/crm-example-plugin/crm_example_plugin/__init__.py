"""An example third-party plugin for crmcore (see docs/plugins.md in crmcore).

It shows every part a plugin may have: its own table and migrations, per-business settings with
a secret, a react hook, a veto hook, an admin menu entry, a seeding hook and a custom field type.
"""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "example"
