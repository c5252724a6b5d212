"""Businesses, memberships and roles."""
