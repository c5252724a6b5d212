"""Users, password hashing and API tokens."""
