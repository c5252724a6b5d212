"""The admin's settings pages (plugins, pipelines, custom fields, numbering, users, API tokens)."""
