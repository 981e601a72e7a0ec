"""Persistence: database tables, migrations and blob storage."""
