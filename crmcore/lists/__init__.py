"""Business-defined lists: prospect statuses, potential levels, lost reasons, competitors, roles."""
