"""The SMTP settings of a business (validated by the core when an admin saves them)."""

from __future__ import annotations

import os
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates

SECURITY = ("starttls", "tls", "none")
#: the port each security mode usually listens on, used when none is given
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class SmtpSettings(Schema):
    """Where and how to send. ``password`` is secret: encrypted at rest, never shown again, and
    may be ``$env:NAME``. ``ca_file`` trusts an extra CA (a private CA, or a test server's
    self-signed certificate); certificates are always verified."""

    host = fields.String(required=True, validate=validate.Length(1, 253),
                         metadata={"label": "SMTP server", "help": "e.g. smtp.example.com"})
    port = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 65535),
                          metadata={"label": "Port", "help": "Empty: 587 for STARTTLS, 465 for TLS, 25 for none."})
    security = fields.String(load_default="starttls", validate=validate.OneOf(
        SECURITY, labels=("STARTTLS (port 587)", "TLS from the start (port 465)", "None (unencrypted)")),
        metadata={"label": "Encryption"})
    username = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=320),
                             metadata={"label": "User name", "help": "Empty: send without logging in."})
    password = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000),
                             metadata={"label": "Password", "secret": True})
    from_address = fields.Email(required=True, metadata={"label": "From address",
                                                         "help": "The sender of every email, e.g. sales@example.com"})
    from_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200),
                              metadata={"label": "From name", "help": "Shown as the sender's name."})
    timeout = fields.Float(load_default=30.0, validate=validate.Range(1, 120),
                           metadata={"label": "Timeout (seconds)", "help": "For each step of the SMTP conversation."})
    ca_file = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000),
                            metadata={"label": "Extra CA certificate file",
                                      "help": "A PEM file on the server to trust as well (a private CA). Empty: the system's."})

    @pre_load
    def _strip(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {k: v.strip() if isinstance(v, str) and k != "password" else v for k, v in data.items()}
        for key in ("port", "username", "from_name", "ca_file", "password"):
            if out.get(key) == "":
                out[key] = None
        return out

    @validates("ca_file")
    def _ca_file(self, value: str | None, **_: Any) -> None:
        if value and not os.path.isfile(value):
            raise ValidationError("no such file on the server")
