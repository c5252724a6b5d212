"""Plugin discovery, registration, per-business enablement and settings."""
