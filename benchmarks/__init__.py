"""Reproducible performance runs. They print figures; they assert nothing (see docs/performance.md)."""
