"""Alembic revisions of the quoting plugin (``versions/``), run by ``crm db upgrade`` after the
core's and the catalog's, with their own version table."""
