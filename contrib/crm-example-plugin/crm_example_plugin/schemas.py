"""The plugin's per-business settings (validated by the core when an admin saves them)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, pre_load, validate

WELCOME_MAX = 200


class ExampleSettings(Schema):
    """Settings of the example plugin.

    ``api_key`` is marked secret: the core encrypts it at rest, never shows it again (a mask
    instead), and accepts ``$env:NAME`` so the key can stay out of the database.
    """

    welcome_message = fields.String(
        required=True, validate=validate.Length(min=1, max=WELCOME_MAX),
        metadata={"label": "Welcome message", "help": "Written to the welcome log for every new party."},
    )
    require_amount_to_win = fields.Boolean(
        load_default=True,
        metadata={"label": "A won deal needs an amount"},
    )
    api_key = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200),
        metadata={"label": "API key", "secret": True},
    )

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return data
