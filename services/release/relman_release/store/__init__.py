"""Persistence: SQLAlchemy tables, the repository, the unit of work and migrations."""
