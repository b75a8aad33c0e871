"""The Release service's tables. Names are distinct from the Deployer's, which may share the
database (``deployments``, ``deployment_events``, ``deploy_leases``)."""

from __future__ import annotations

from datetime import datetime

from relman_common.request_results import results_table
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# An auto-incrementing key: BIGINT on PostgreSQL, SQLite's INTEGER PRIMARY KEY (the rowid).
SeqType = BigInteger().with_variant(Integer(), "sqlite")

ID_LENGTH = 11


class Base(DeclarativeBase):
    pass


class AppRow(Base):
    __tablename__ = "apps"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    active_release_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    latest_release_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    current_deployment_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    current_deployment_started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The app's lock (migration 0007): empty locked_by when unlocked.
    locked_by: Mapped[str] = mapped_column(String(64), default="")
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lock_message: Mapped[str] = mapped_column(Text, default="")
    # The release active before the active one: a rollback's target, kept by retention (0008).
    previous_active_release_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    # How many webhooks it has (migration 0009): none, no event is written.
    webhooks: Mapped[int] = mapped_column(Integer, default=0)


class BuildRow(Base):
    __tablename__ = "builds"
    __table_args__ = (
        Index("ix_builds_app_seq", "app_id", "seq"),
        Index("ix_builds_status", "status"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    manifest: Mapped[str] = mapped_column(Text)
    images: Mapped[str] = mapped_column(Text)  # JSON object, service -> image reference
    description: Mapped[str] = mapped_column(Text)
    git_sha: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    # Builds from source (migration 0004).
    release_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    source_sha256: Mapped[str] = mapped_column(String(64), default="")
    manifest_path: Mapped[str] = mapped_column(Text, default="")
    no_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    log_lines: Mapped[int] = mapped_column(SeqType, default=0)
    # The Release service instance running the build, and when it last said it was alive.
    runner: Mapped[str] = mapped_column(String(64), default="")
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BuildLogRow(Base):
    """One line of a build's log; ``seq`` counts from 1 per build, without gaps."""

    __tablename__ = "build_logs"

    build_id: Mapped[str] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (
        Index("ix_releases_app_seq", "app_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    build_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    env: Mapped[str] = mapped_column(Text)  # see store.codec.encode_env
    description: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    last_deployment_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    last_deployment_outcome: Mapped[str] = mapped_column(String(16), default="")
    # Never pruned (migration 0008).
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiTokenRow(Base):
    """An API token. Only the SHA-256 hash of its secret is stored (see relman_common.tokens)."""

    __tablename__ = "api_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))


class PrunedRow(Base):
    """The id of a pruned release or build: asking for it says it was pruned."""

    __tablename__ = "pruned"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    pruned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))


class GarbageRow(Base):
    """A file a prune let go (``kind`` source: an archive's sha256; image: an image
    reference), deleted after the prune's commit; the row goes once the file has."""

    __tablename__ = "garbage"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookRow(Base):
    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_app", "app_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)  # JSON list of patterns
    secret: Mapped[str] = mapped_column(Text)  # sealed (relman_common.secretbox)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))


class WebhookEventRow(Base):
    """The outbox: an event, written in the transaction of the change it reports."""

    __tablename__ = "webhook_events"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    app: Mapped[str] = mapped_column(String(30))
    type: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state", "state", "webhook_id"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("webhook_events.seq"))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    delivery_seq: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.seq", ondelete="CASCADE")
    )
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)


# Results of mutating calls by client request id (relman_common.request_ids).
request_results = results_table(Base.metadata, "release_request_results")
