"""Deployment events: the durable log (one writer), live fan-out in this process, and Watch
(replay, then follow)."""

from relman_deployer.events.hub import EventHub
from relman_deployer.events.log import EventLog
from relman_deployer.events.watch import watch

__all__ = ["EventHub", "EventLog", "watch"]
