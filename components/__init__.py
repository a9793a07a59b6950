"""Reusable ComponentResources of the clickstream-personalization program."""
