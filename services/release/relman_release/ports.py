"""What the use-cases need from storage: a repository of domain objects inside a transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from relman_common.lifecycle import BuildStatus, Outcome
from relman_common.locks import AppLock

from relman_release.domain.model import App, Build, LogLine, Page, Release
from relman_release.domain.retention import BuildFacts
from relman_release.domain.tokens import ApiToken
from relman_release.domain.webhooks import Attempt, Delivery, Event, Target, Webhook

T = TypeVar("T")


class Repository(Protocol):
    def get_app(self, name: str) -> App | None: ...

    def lock_app(self, name: str) -> App | None:
        """The app, locked against other writers until the transaction ends."""
        ...

    def lock_app_with_build(self, name: str, build_id: str) -> tuple[App | None, bool | None]:
        """``lock_app(name)``, and whether build ``build_id`` belongs to that app (None when
        there is no such build), in one round trip."""
        ...

    def list_apps(self) -> list[App]: ...

    def add_app(self, app: App) -> None: ...

    def delete_app(self, name: str) -> None: ...

    def set_active_release(self, app: str, release_id: str, previous_id: str = "") -> None:
        """``release_id`` becomes active; ``previous_id`` is the release active before it."""
        ...

    def add_build(self, build: Build, runner: str = "") -> None:
        """Stores the build; ``runner`` names the instance that will run it."""
        ...

    def find_build(self, build_id: str) -> Build | None:
        """The build with this id, in whichever app holds it."""
        ...

    def list_builds(self, app: str, limit: int, before: int | None) -> Page[Build]: ...

    def add_release(self, release: Release) -> None:
        """Stores the release; it becomes the app's latest release."""
        ...

    def find_release(self, release_id: str) -> Release | None:
        """The release with this id (env included), in whichever app holds it."""
        ...

    def list_releases(self, app: str, limit: int, before: int | None) -> Page[Release]:
        """Newest first, env left empty."""
        ...

    def record_outcome(self, release_id: str, deployment_id: str, outcome: Outcome) -> None: ...

    def set_current_deployment(self, app: str, deployment_id: str, started: datetime) -> None:
        """The app's deployment started last (whose reports count)."""
        ...

    def set_lock(self, app: str, lock: AppLock | None) -> None:
        """Locks the app with ``lock``, or unlocks it (None)."""
        ...

    # --- retention (SPEC 9) ---

    def all_releases(self, app: str) -> list[Release]:
        """Every release of the app, newest first, env left empty."""
        ...

    def count_releases(self, app: str) -> int: ...

    def build_facts(self, app: str) -> list[BuildFacts]: ...

    def prune(
        self,
        app: str,
        release_ids: Sequence[str],
        build_ids: Sequence[str],
        garbage: Sequence[tuple[str, str]],
        when: datetime,
        actor: str,
    ) -> None:
        """Removes the releases and builds, remembers their ids as pruned and lists the
        files they leave (``garbage``) for deletion after the commit."""
        ...

    def find_pruned(self, object_id: str) -> tuple[str, datetime] | None:
        """(app, when) of a pruned release or build; None if it was never pruned."""
        ...

    def set_pinned(self, release_id: str, pinned: bool) -> None: ...

    def list_garbage(self, limit: int) -> list[tuple[int, str, str]]:
        """(seq, kind, ref) of files waiting to be deleted, oldest first."""
        ...

    def forget_garbage(self, seqs: Sequence[int]) -> None: ...

    def in_use(self, kind: str, ref: str) -> bool:
        """Whether a build still names this source archive or image."""
        ...

    # --- webhooks (SPEC 9) ---

    def add_webhook(self, hook: Webhook, secret: bytes) -> None:
        """Stores the webhook, its secret sealed."""
        ...

    def webhooks_of(self, app: str) -> list[Webhook]: ...

    def find_webhook(self, webhook_id: str) -> tuple[Webhook, int] | None: ...

    def delete_webhook(self, webhook_id: str) -> None:
        """The webhook with its deliveries and their attempts."""
        ...

    def add_event(self, event: Event, webhook_ids: Sequence[str]) -> None:
        """The event in the outbox, and a pending delivery of it to each webhook."""
        ...

    def due_deliveries(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        """(seq, webhook id) of each webhook's oldest pending delivery, when it is due and
        unclaimed."""
        ...

    def next_due(self) -> datetime | None: ...

    def claim_delivery(self, seq: int, owner: str, now: datetime, until: datetime) -> bool: ...

    def delivery_target(self, seq: int) -> Target | None: ...

    def record_attempt(
        self,
        seq: int,
        owner: str,
        attempt: Attempt,
        *,
        state: str,
        attempts_made: int,
        next_attempt: datetime | None,
        delivered: datetime | None,
    ) -> bool: ...

    def list_deliveries(self, webhook_id: str, limit: int) -> list[Delivery]: ...

    def forget_webhook_history(self, before: datetime, limit: int) -> tuple[int, int]:
        """Deletes up to ``limit`` finished deliveries (delivered or given up) of events
        created before ``before``, with their attempts, then up to ``limit`` such events no
        delivery names any more; how many deliveries, and how many events, went."""
        ...

    # --- running builds: each change names the runner and expects a status ---

    def start_build(self, build_id: str, runner: str, when: datetime) -> bool:
        """CREATED -> RUNNING for the build ``runner`` owns; False if it was not that."""
        ...

    def finish_build(
        self,
        build_id: str,
        runner: str,
        status: BuildStatus,
        when: datetime,
        images: dict[str, str],
        reason: str = "",
        release_id: str = "",
    ) -> bool:
        """RUNNING -> ``status`` for the build ``runner`` runs; False if it was not that."""
        ...

    def renew_builds(self, runner: str, build_ids: Sequence[str], when: datetime) -> int:
        """The heartbeat of ``runner``'s unfinished builds among ``build_ids``."""
        ...

    def interrupt_builds(
        self, when: datetime, reason: str, *, runner: str = "", stale_before: datetime | None = None
    ) -> list[str]:
        """Fails the unfinished builds of ``runner``, or those whose heartbeat is older
        than ``stale_before``; their ids."""
        ...

    def append_build_log(self, build_id: str, lines: Sequence[LogLine]) -> None:
        """Stores lines (seqs following the stored ones) and counts them on the build."""
        ...

    def build_log(self, build_id: str, after_seq: int, limit: int) -> list[LogLine]: ...

    # --- API tokens (stored as SHA-256 hashes only) ---

    def count_tokens(self) -> int: ...

    def add_token(self, token: ApiToken, token_hash: str) -> None:
        """Stores a new token; AlreadyExists if its name is taken."""
        ...

    def get_token(self, name: str) -> ApiToken | None: ...

    def find_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def list_tokens(self) -> list[ApiToken]:
        """Oldest first, revoked ones included."""
        ...

    def lock_live_admins(self) -> list[str]:
        """Names of the live admin tokens, locked against other writers until the end."""
        ...

    def revoke_token(self, name: str, when: datetime) -> None: ...


class UnitOfWork(Protocol):
    # RELMAN_KEEP_RELEASES: prune an app to this many releases after each new one (0: never).
    keep_releases: int

    def read(self) -> AbstractContextManager[Repository]:
        """A read-only transaction."""
        ...

    def write(self) -> AbstractContextManager[Repository]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        ...

    def now(self) -> datetime: ...


class Writes(Protocol):
    async def run(self, use_case: Callable[..., T], *args: Any) -> T:
        """``use_case(uow, *args)`` with a unit of work whose ``write()`` is committed before
        this returns (possibly in one commit with other writes, each atomic on its own)."""
        ...
