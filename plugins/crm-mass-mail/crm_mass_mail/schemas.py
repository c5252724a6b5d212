"""Validation of what an admin types: a campaign (marshmallow). The audience is checked a
second time by the core's own party filter schema (:func:`crmcore.parties.service.list_parties`)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from crmcore.lists.schemas import Text, WholeNumber

THROTTLE_MIN, THROTTLE_MAX = 1, 10_000
#: the audience filter is a small object: more keys than this is not a filter anyone typed
AUDIENCE_MAX_KEYS = 40


class CampaignInput(Schema):
    """A campaign as created or edited (only while it is a draft)."""

    class Meta:
        unknown = EXCLUDE

    name = Text(200, required=True, not_empty=True)
    template_key = Text(100, required=True, not_empty=True)
    throttle = WholeNumber(required=True, validate=validate.Range(
        min=THROTTLE_MIN, max=THROTTLE_MAX, error=f"messages per minute: {THROTTLE_MIN:,} to {THROTTLE_MAX:,}"))
    audience = fields.Dict(keys=fields.String(), load_default=dict)

    @validates("audience")
    def _audience(self, value: dict[str, Any], **_kwargs: Any) -> None:
        if len(value) > AUDIENCE_MAX_KEYS:
            raise ValidationError(f"at most {AUDIENCE_MAX_KEYS} filter keys")


class RecipientQuery(Schema):
    """The recipients page's filter."""

    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(
        ("queued", "sent", "delivered", "failed", "suppressed", "skipped")))
