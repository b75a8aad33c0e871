"""Webhook delivery (SPEC 9): the worker that sends the outbox's events."""
