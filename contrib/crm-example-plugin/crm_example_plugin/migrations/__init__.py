"""Alembic revisions of the example plugin (``versions/``), run by ``crm db upgrade`` after the
core's, with their own version table ``alembic_version_example``."""
