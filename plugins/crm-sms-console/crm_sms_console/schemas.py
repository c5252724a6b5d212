"""Settings of the console provider: nothing secret, nothing required."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ConsoleSettings(Schema):
    sender = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=32),
        metadata={"label": "Sender", "description": "The From shown in the log."},
    )
    report_delivered = fields.Boolean(
        load_default=False,
        metadata={"label": "Report delivered at once",
                  "description": "Mark each SMS delivered instead of sent (to try the delivered state)."},
    )
