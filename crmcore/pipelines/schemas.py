"""Input schemas of the pipeline administration use cases."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from crmcore.pipelines.rules import STAGE_KINDS
from crmcore.records.schemas import Id, Trimmed, load

NAME_MAX = 100

__all__ = ["PipelineCreateSchema", "PipelineRenameSchema", "StageAddSchema", "StageSchema",
           "StageUpdateSchema", "load"]


class StageSchema(Schema):
    name = Trimmed(NAME_MAX, required=True)
    kind = fields.String(load_default="open", validate=validate.OneOf(STAGE_KINDS))
    probability = fields.Integer(strict=True, allow_none=True,
                                 validate=validate.Range(min=0, max=100, error="use a percentage from 0 to 100"))


class StageAddSchema(StageSchema):
    position = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0))


class StageUpdateSchema(Schema):
    name = Trimmed(NAME_MAX)
    kind = fields.String(validate=validate.OneOf(STAGE_KINDS))
    probability = fields.Integer(strict=True, allow_none=True,
                                 validate=validate.Range(min=0, max=100, error="use a percentage from 0 to 100"))


class PipelineCreateSchema(Schema):
    name = Trimmed(NAME_MAX, required=True)
    is_default = fields.Boolean(load_default=False)
    stages = fields.List(fields.Nested(StageSchema), required=True,
                         validate=validate.Length(min=3, max=50, error="give from 3 to 50 stages"))


class PipelineRenameSchema(Schema):
    name = Trimmed(NAME_MAX, required=True)


class ReorderSchema(Schema):
    stage_ids = fields.List(Id(), required=True)
