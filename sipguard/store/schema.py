"""The store's file format: DDL, numbered migrations keyed on `PRAGMA user_version`, and its errors.

A fresh file gets every step; an older file is upgraded in place, one step per transaction; a
file written by a newer sipguard (a higher `user_version` than `SCHEMA_VERSION`) is refused, never
guessed at. Steps are only ever appended, never edited once released: a file at version N has run
exactly steps 1..N.

Standard library only. `migrate` is synchronous and takes a plain `sqlite3.Connection`: `Store.open`
runs it in a worker thread before its own connection opens (STYLE D3).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "SchemaError",
    "StoreError",
    "migrate",
]

# `PRAGMA application_id`: "SGRD". Marks the file as a sipguard store for file(1) and for `migrate`.
APPLICATION_ID = 0x53475244


class StoreError(Exception):
    """The one exception the store raises; the sqlite3/aiosqlite error is its `__cause__`.

    `retryable` is True when the same call may succeed later unchanged: the disk is full, the file
    is locked by another writer past the busy timeout, an I/O error, the file went read-only. It is
    False when retrying cannot help: the store is closed, the file is not a sipguard store (or is
    newer than this code), or the data itself was refused.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SchemaError(StoreError):
    """The file is not a store this sipguard can use: newer than the code, or another program's."""


@dataclass(frozen=True, slots=True)
class Migration:
    """Step `version`: run `statements` in order in one transaction, then set `user_version`."""

    version: int
    summary: str
    statements: tuple[str, ...]


_V1 = Migration(
    version=1,
    summary="bans, events, policy_reloads, meta",
    statements=(
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """,
        # One row per ban issued; a BanLifted closes the latest open row of its ip. `id` is the
        # write order, which is the engine's order: the latest ban of an ip is its highest id
        # (wall clocks can step back).
        """
        CREATE TABLE bans (
            id          INTEGER PRIMARY KEY,
            ip          TEXT    NOT NULL,
            issued_at   REAL    NOT NULL,
            until       REAL    NOT NULL,
            reason      TEXT    NOT NULL,
            rule        TEXT    NOT NULL DEFAULT '',
            evidence    TEXT    NOT NULL DEFAULT '',
            offences    INTEGER NOT NULL DEFAULT 1,
            actor       TEXT    NOT NULL,
            lifted_at   REAL,
            lifted_by   TEXT,
            lift_reason TEXT,
            CHECK ((lifted_at IS NULL) = (lifted_by IS NULL)),
            CHECK ((lifted_at IS NULL) = (lift_reason IS NULL))
        )
        """,
        # latest ban per ip (the rowid is the last column of every index) and the lift lookup
        "CREATE INDEX bans_by_ip ON bans (ip)",
        # offence counts since a time (covering: an index-only range scan)
        "CREATE INDEX bans_by_issued_at ON bans (issued_at, ip)",
        # active bans: only open rows, already in `until` order
        "CREATE INDEX bans_open_by_until ON bans (until) WHERE lifted_at IS NULL",
        """
        CREATE TABLE events (
            id       INTEGER PRIMARY KEY,
            at       REAL    NOT NULL,
            kind     TEXT    NOT NULL,
            severity TEXT    NOT NULL,
            ip       TEXT    NOT NULL DEFAULT '',
            port     INTEGER NOT NULL DEFAULT 0,
            country  TEXT,
            account  TEXT,
            method   TEXT,
            rule     TEXT    NOT NULL DEFAULT '',
            detail   TEXT    NOT NULL DEFAULT ''
        )
        """,
        "CREATE INDEX events_by_at ON events (at)",
        "CREATE INDEX events_by_kind_at ON events (kind, at)",
        # the audit trail of policy reloads: who, when, which file and content, and what changed
        """
        CREATE TABLE policy_reloads (
            id      INTEGER PRIMARY KEY,
            at      REAL NOT NULL,
            actor   TEXT NOT NULL,
            path    TEXT NOT NULL,
            sha256  TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
            summary TEXT NOT NULL DEFAULT ''
        )
        """,
        "CREATE INDEX policy_reloads_by_at ON policy_reloads (at)",
    ),
)

_V2 = Migration(
    version=2,
    summary="logins: the history of successful logins per account (unusual-login detection)",
    statements=(
        # one row per (account, country, local hour): small, and what "never seen before" needs
        """
        CREATE TABLE logins (
            account    TEXT    NOT NULL,
            country    TEXT    NOT NULL DEFAULT '',
            hour       INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
            count      INTEGER NOT NULL DEFAULT 1,
            first_seen REAL    NOT NULL,
            last_seen  REAL    NOT NULL,
            PRIMARY KEY (account, country, hour)
        ) WITHOUT ROWID
        """,
    ),
)

_V3 = Migration(
    version=3,
    summary="rollups (per-minute traffic) and drills (results of `sipguard drill`)",
    statements=(
        # One row per (minute, dimension, key): the record of normal behaviour and the material of
        # reports. `minute` is epoch seconds at the start of the minute; a second write for the
        # same minute (a flush, a restart) adds to the row. Dimensions: sipguard.store.rollup.
        """
        CREATE TABLE rollups (
            minute    INTEGER NOT NULL,
            dimension TEXT    NOT NULL,
            key       TEXT    NOT NULL DEFAULT '',
            value     REAL    NOT NULL,
            PRIMARY KEY (minute, dimension, key)
        ) WITHOUT ROWID
        """,
        # One row per drill run; `results` is the drill's JSON report (a list of attacks with
        # expected and observed outcomes), kept whole so `sipguard report` can show it.
        """
        CREATE TABLE drills (
            id            INTEGER PRIMARY KEY,
            started_at    REAL    NOT NULL,
            finished_at   REAL    NOT NULL,
            target        TEXT    NOT NULL,
            policy_sha256 TEXT    NOT NULL DEFAULT '',
            passed        INTEGER NOT NULL,
            failed        INTEGER NOT NULL,
            results       TEXT    NOT NULL
        )
        """,
        "CREATE INDEX drills_by_started_at ON drills (started_at)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = MIGRATIONS[-1].version


# One statement is one read snapshot: a version, an id and a table count from the same moment
# (read one by one, another process could commit a migration in between).
_STATE = (
    "SELECT (SELECT user_version FROM pragma_user_version),"
    " (SELECT application_id FROM pragma_application_id),"
    " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%')"
)


def _version(conn: sqlite3.Connection, where: str, latest: int) -> int:
    """The file's `user_version`, after refusing what `migrate` must not touch: a newer store, or
    another program's database."""
    version, app_id, tables = conn.execute(_STATE).fetchone()
    if version > latest:
        raise SchemaError(
            f"{where}: store schema version {version} is newer than this sipguard knows "
            f"({latest}); run a sipguard at least as new as the one that wrote it, or point "
            "`storage:` at another file"
        )
    if app_id not in (0, APPLICATION_ID):
        raise SchemaError(f"{where}: not a sipguard store (application_id {app_id:#010x})")
    if version == 0 and tables:
        raise SchemaError(
            f"{where}: not a sipguard store (user_version 0, but it has {tables} table(s))"
        )
    return int(version)


def _check_steps(steps: Sequence[Migration]) -> None:
    for number, step in enumerate(steps, start=1):
        if step.version != number:
            raise ValueError(
                f"migration steps must be numbered 1, 2, 3, ...: got {step.version} at {number}"
            )


def migrate(
    conn: sqlite3.Connection,
    *,
    now: float,
    steps: Sequence[Migration] = MIGRATIONS,
    where: str = "store",
) -> int:
    """Bring the file behind `conn` to the last of `steps`; return the version it was at before.

    `conn` must be in autocommit mode (`isolation_level=None`). A file that is already current is
    only read, so a CLI reader never waits for the daemon's write lock. Otherwise each step runs in
    its own `BEGIN IMMEDIATE` transaction that re-reads `user_version` first, so two processes
    opening a fresh file at once apply each step exactly once. `now` (epoch seconds) is recorded in
    `meta`. Raises `SchemaError` for a file it must not touch, and lets `sqlite3.Error` through (the
    caller wraps it).
    """
    _check_steps(steps)
    latest = steps[-1].version if steps else 0
    before = _version(conn, where, latest)
    if before == latest:
        return before
    for step in steps[before:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = _version(conn, where, latest)
            if current < step.version:
                for statement in step.statements:
                    conn.execute(statement)
                if current == 0:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('created_at', ?)",
                        (repr(now),),
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (f"schema.{step.version}", f"{step.summary} (applied at {now!r})"),
                )
                conn.execute(f"PRAGMA user_version = {step.version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return before
