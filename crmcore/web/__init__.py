"""The Flask admin and the JSON API: a thin layer over the services.

``create_app(config)`` builds the app: per-request :class:`~crmcore.context.Context` (business
scope and role), login sessions, CSRF, security headers, the core's and plugins' blueprints
(through ``crm_register_blueprints``), a 404 for any page of a plugin the current business has
not enabled, and errors rendered for people (pages) or programs (``problem+json``).
"""

from __future__ import annotations

from crmcore.web.app import create_app

__all__ = ["create_app"]
