"""Alembic revisions of the mass-mail plugin (``versions/``), run by ``crm db upgrade`` after the
core's, with their own version table."""
