"""The Deployer's tests run on ``stack`` (tests/support/deployer_stack.py): the real Release
service and Deployer in the test's process, on the database of ``db_url``."""

from support.deployer_stack import stack

__all__ = ["stack"]
