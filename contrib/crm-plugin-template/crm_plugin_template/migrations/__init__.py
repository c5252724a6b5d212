"""The plugin's Alembic revisions (``versions/``); ``crm db upgrade`` runs them after the core's."""
