"""Alembic revisions of the orders plugin (``versions/``), run by ``crm db upgrade`` after the
core's, the catalog's and quoting's, with their own version table."""
