"""Alembic revisions of the catalog plugin (``crm db upgrade`` runs them)."""
