"""The plugin's per-business settings."""

from __future__ import annotations

from marshmallow import Schema, fields


class PluginTemplateSettings(Schema):
    add_timeline_note = fields.Boolean(
        load_default=True, metadata={"label": "Add a note to the timeline for every win"})
