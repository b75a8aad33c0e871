"""Deployments, their event logs and per-app leases in SQL (SQLite or PostgreSQL)."""
