"""The core's tests use the fixtures of ``crmcore.testing`` (loaded through its pytest11 entry point)."""
