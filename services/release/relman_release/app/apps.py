"""Apps: create, read, list, delete."""

from __future__ import annotations

from relman_common.errors import APP_EXISTS, AlreadyExists
from relman_common.vocabulary import validate_app_name

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
