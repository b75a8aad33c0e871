"""Apps: create, read, list, delete; lock and unlock."""

from __future__ import annotations

from dataclasses import replace

from relman_common.errors import (
    APP_EXISTS,
    APP_LOCKED,
    NOT_LOCKED,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
)
from relman_common.locks import MAX_LOCK_MESSAGE, AppLock, locked_message
from relman_common.vocabulary import validate_app_name, validate_text

from relman_release.app import lookups
from relman_release.domain.model import App
from relman_release.ports import UnitOfWork


def create_app(uow: UnitOfWork, name: str, actor: str) -> App:
    validate_app_name(name, "name")
    with uow.write() as repo:
        if repo.get_app(name) is not None:
            raise AlreadyExists(f"app already exists: {name}", reason=APP_EXISTS, field="name")
        app = App(name=name, created=uow.now(), actor=actor)
        repo.add_app(app)
        return app


def get_app(uow: UnitOfWork, name: str) -> App:
    validate_app_name(name, "name")
    with uow.read() as repo:
        return lookups.app_named(repo, name, field="name")


def list_apps(uow: UnitOfWork) -> list[App]:
    with uow.read() as repo:
        return repo.list_apps()


def delete_app(uow: UnitOfWork, name: str) -> None:
    """Removes the app with all its builds and releases, in one transaction."""
    validate_app_name(name, "name")
    with uow.write() as repo:
        lookups.app_named(repo, name, lock=True, field="name")
        repo.delete_app(name)


def lock_app(uow: UnitOfWork, name: str, message: str, actor: str) -> App:
    """Locks the app (SPEC 9): the Deployer refuses to deploy it unless forced. A second lock
    is refused with the first one's words: unlock first."""
    validate_app_name(name)
    validate_text("lock message", message, max_length=MAX_LOCK_MESSAGE, field="message")
    if not message.strip():
        raise InvalidArgument("a lock needs a message: say why (--message)", field="message")
    with uow.write() as repo:
        app = lookups.app_named(repo, name, lock=True)
        held = app.current_lock()
        if held is not None:
            raise FailedPrecondition(locked_message(held), reason=APP_LOCKED)
        lock = AppLock(actor, uow.now(), message)
        repo.set_lock(app.name, lock)
        return replace(
            app, locked_by=lock.locked_by, locked_at=lock.locked_at, lock_message=message
        )


def unlock_app(uow: UnitOfWork, name: str) -> App:
    validate_app_name(name)
    with uow.write() as repo:
        app = lookups.app_named(repo, name, lock=True)
        if app.current_lock() is None:
            raise FailedPrecondition(f"app {app.name} is not locked", reason=NOT_LOCKED)
        repo.set_lock(app.name, None)
        return replace(app, locked_by="", locked_at=None, lock_message="")
