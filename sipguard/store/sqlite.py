"""The SQLite store: bans, events, rollups, drills and the reload audit trail, written in batches.

The only importer of aiosqlite in sipguard (STYLE B, C13). The engine's in-memory ban table is
authoritative; this file persists it, so bans (`active_bans`) and escalation (`offence_counts`)
survive a restart. The daemon writes; `sipguard bans/events/report` open the same file with another
`Store` and read while it writes (WAL: readers and the writer do not block each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, cast

import aiosqlite

from sipguard.engine.effects import BanIssued, BanLifted, LoginSeen, SecurityEvent
from sipguard.policy.model import Severity
from sipguard.store.rollup import Dimension, DrillRecord, RollupRow
from sipguard.store.schema import StoreError, migrate

__all__ = ["BanRecord", "EventRecord", "ReloadOutcome", "ReloadRecord", "Storable", "Store"]

Storable = BanIssued | BanLifted | SecurityEvent | LoginSeen
ReloadOutcome = Literal["ok", "failed"]

DEFAULT_BUSY_TIMEOUT: Final = 5.0  # seconds a write waits for another process's write lock
_PRUNE_CHUNK: Final = 10_000  # rows per delete transaction: a big prune never holds the lock long
_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes the -wal file is cut to after a checkpoint
_DIR_MODE: Final = 0o750
_FILE_MODE: Final = 0o640  # SQLite gives the -wal and -shm files the mode of the database file


@dataclass(frozen=True, slots=True)
class BanRecord:
    """One row of `bans`: a ban as issued, and how it ended if it was lifted."""

    id: int  # write order: the latest ban of an ip has the highest id
    ip: str
    issued_at: float
    until: float
    reason: str
    rule: str
    evidence: str
    offences: int
    actor: str
    lifted_at: float | None
    lifted_by: str | None
    lift_reason: str | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of `events`, a stored `SecurityEvent`."""

    id: int
    at: float
    kind: str
    severity: Severity
    ip: str
    port: int
    country: str | None
    account: str | None
    method: str | None
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """One row of `policy_reloads`, the audit trail of policy changes."""

    id: int
    at: float
    actor: str
    path: str
    sha256: str
    outcome: str  # "ok" or "failed"
    summary: str


_BAN_COLUMNS: Final = (
    "id, ip, issued_at, until, reason, rule, evidence, offences, actor,"
    " lifted_at, lifted_by, lift_reason"
)
_EVENT_COLUMNS: Final = "id, at, kind, severity, ip, port, country, account, method, rule, detail"
_RELOAD_COLUMNS: Final = "id, at, actor, path, sha256, outcome, summary"

_UPSERT_LOGIN: Final = (
    "INSERT INTO logins (account, country, hour, count, first_seen, last_seen)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, country, hour)"
    " DO UPDATE SET count = count + excluded.count, last_seen = excluded.last_seen"
)
_INSERT_BAN: Final = (
    "INSERT INTO bans (ip, issued_at, until, reason, rule, evidence, offences, actor)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A lift closes the latest open ban of its ip; a lift with no open ban is a no-op.
_LIFT_BAN: Final = (
    "UPDATE bans SET lifted_at = ?, lifted_by = ?, lift_reason = ?"
    " WHERE id = (SELECT max(id) FROM bans WHERE ip = ? AND lifted_at IS NULL)"
)
_INSERT_EVENT: Final = (
    "INSERT INTO events (at, kind, severity, ip, port, country, account, method, rule, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The state of an ip is its latest ban (highest id): active when open and not expired. Walks the
# partial index of open bans from `now` on, in `until` order, with one index probe per row for a
# later ban of the same ip.
_ACTIVE_BANS: Final = (
    f"SELECT {_BAN_COLUMNS} FROM bans AS b"  # noqa: S608 (constants only)
    " WHERE b.lifted_at IS NULL AND b.until > ?"
    " AND NOT EXISTS (SELECT 1 FROM bans AS later WHERE later.ip = b.ip AND later.id > b.id)"
    " ORDER BY b.until, b.id"
)
_OFFENCE_COUNTS: Final = (
    "SELECT ip, count(*) FROM bans INDEXED BY bans_by_issued_at WHERE issued_at >= ? GROUP BY ip"
)
_INSERT_RELOAD: Final = (
    "INSERT INTO policy_reloads (at, actor, path, sha256, outcome, summary)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_ROLLUP: Final = (
    "INSERT INTO rollups (minute, dimension, key, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, dimension, key) DO UPDATE SET value = value + excluded.value"
)
_DRILL_COLUMNS: Final = (
    "id, started_at, finished_at, target, policy_sha256, passed, failed, results"
)
_INSERT_DRILL: Final = (
    "INSERT INTO drills (started_at, finished_at, target, policy_sha256, passed, failed, results)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# rollups is WITHOUT ROWID: delete whole minutes, oldest first, a chunk of minutes at a time
_PRUNE_ROLLUPS: Final = (
    "DELETE FROM rollups WHERE minute IN"
    " (SELECT DISTINCT minute FROM rollups WHERE minute < ? ORDER BY minute LIMIT ?)"
)
_PRUNE_EVENTS: Final = (
    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? ORDER BY at LIMIT ?)"
)

_SEVERITY: Final = {s.value: s for s in Severity}

_Row = tuple[Any, ...]
_Work = tuple[str, list[_Row]]  # a statement and the rows for its executemany


# Primary result codes of trouble that can heal with time or an admin: locked or busy past the
# timeout, out of memory, read-only, I/O error, disk full, cannot open, lock protocol.
_TRANSIENT: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def _wrap(what: str, exc: BaseException) -> StoreError:
    """One error type out of the store; `retryable` when it may heal (see `_TRANSIENT`)."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return StoreError(f"{what}: {exc}", retryable=code is not None and (code & 0xFF) in _TRANSIENT)


# Errors that become StoreError: sqlite3's own, aiosqlite's "Connection closed" (ValueError), text
# that cannot be encoded (UnicodeEncodeError is a ValueError), integers too big for SQLite.
_DB_ERRORS: Final = (sqlite3.Error, ValueError, OverflowError)


def _prepare(path: Path, now: float, busy_timeout: float) -> None:
    """Blocking, run in a thread: folder, file, schema, WAL. A current file is only read."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        parent.chmod(_DIR_MODE)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE))
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        migrate(conn, now=now, where=str(path))  # refuses a foreign or newer file untouched
        _use_wal(conn, path, busy_timeout)
    finally:
        conn.close()


def _use_wal(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Switch the file to WAL (persistent: done once per file). The switch needs the file to
    itself and SQLite does not wait for that, so retry until `busy_timeout` when several
    processes open a fresh file at once."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout
    mode: object = None
    while mode is None:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)  # in the worker thread of `Store.open`, never on the loop
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: cannot use the WAL journal mode (got {mode!r})")


class Store:
    """Async access to one store file. Open with `await Store.open(path)`; close with `close()` or
    `async with`. For database trouble every method raises `StoreError` and nothing else.

    Calls on one `Store` are serialised (one connection, one transaction at a time); open another
    `Store` on the same file for a concurrent reader, e.g. in another process.
    """

    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        """Use `Store.open`."""
        self._path = path
        self._db: aiosqlite.Connection | None = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> Self:
        """Open (creating folder and file if needed) and migrate the store at `path`.

        The folder is created with mode 0750 and the file with 0640 (less what the umask removes).
        `busy_timeout` (seconds) is how long a write waits for another process's write lock.
        Raises `SchemaError` (a `StoreError`) for a file of a newer sipguard or of another program.
        """
        where = Path(path)
        try:
            await asyncio.to_thread(_prepare, where, time.time(), busy_timeout)
            db = await aiosqlite.connect(where, timeout=busy_timeout, isolation_level=None)
        except StoreError:
            raise
        except (*_DB_ERRORS, OSError) as exc:
            raise _wrap(f"{where}: cannot open the store", exc) from exc
        try:
            for pragma in (
                "PRAGMA foreign_keys = ON",
                "PRAGMA synchronous = NORMAL",
                f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}",
            ):
                await db.execute(pragma)
        except _DB_ERRORS as exc:
            await db.close()
            raise _wrap(f"{where}: cannot set up the connection", exc) from exc
        return cls(where, db)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._db is None

    async def close(self) -> None:
        """Close the connection (idempotent). Waits for a write in progress to finish first."""
        async with self._lock:
            db, self._db = self._db, None
            if db is None:
                return
            with contextlib.suppress(*_DB_ERRORS):  # statistics only; the close is what matters
                await db.execute("PRAGMA optimize")
            try:
                await db.close()
            except _DB_ERRORS as exc:
                raise _wrap(f"{self._path}: close failed", exc) from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"{self._path}: the store is closed")
        return self._db

    # -- writes ------------------------------------------------------------------------------------

    async def write(self, batch: Sequence[Storable]) -> None:
        """Persist a batch of effects in one transaction: all of it, or none of it.

        Events go in with one `executemany`; bans in batch order, one `executemany` per run of
        issues or lifts, so an issue then a lift of the same ip ends lifted (and a lift then a
        re-ban ends banned). A lift closes the latest open ban of its ip; with none it does nothing.

        Error contract: on any database failure the transaction is rolled back and one `StoreError`
        is raised (the sqlite3/aiosqlite error is its `__cause__`): nothing of the batch was
        written. The caller keeps the batch and passes it to `write` again later; a retry after
        the cause has healed writes every effect exactly once. `err.retryable` says whether
        waiting can help (disk full, locked past `busy_timeout`, I/O error, read-only file). When
        it is False (the store is closed, or the data was refused: a bug) the same batch will not
        go in; log it, and keep at least the bans for a store opened again. Cancelling a `write`
        rolls it back too, except while its COMMIT is in flight: then the batch is in, and a retry
        would write it twice (so shutdown should await the last flush, not cancel it). Something
        not storable in `batch` is a bug: it raises `TypeError` before any I/O.
        """
        events: list[_Row] = []
        runs: list[_Work] = []  # (statement, rows): bans and lifts in batch order
        for effect in batch:
            if isinstance(effect, SecurityEvent):
                events.append(
                    (
                        effect.at,
                        effect.kind,
                        effect.severity.value,
                        effect.ip,
                        effect.port,
                        effect.country,
                        effect.account,
                        effect.method,
                        effect.rule,
                        effect.detail,
                    )
                )
                continue
            if isinstance(effect, BanIssued):
                sql = _INSERT_BAN
                row: _Row = (
                    effect.ip,
                    effect.issued_at,
                    effect.until,
                    effect.reason,
                    effect.rule,
                    effect.evidence,
                    effect.offences,
                    effect.actor,
                )
            elif isinstance(effect, BanLifted):
                sql = _LIFT_BAN
                row = (effect.at, effect.actor, effect.why, effect.ip)
            elif isinstance(effect, LoginSeen):
                sql = _UPSERT_LOGIN
                row = (
                    effect.account,
                    effect.country,
                    effect.hour,
                    effect.count,
                    effect.at,
                    effect.at,
                )
            else:
                raise TypeError(f"the store cannot write {type(effect).__name__}")
            if runs and runs[-1][0] is sql:
                runs[-1][1].append(row)
            else:
                runs.append((sql, [row]))
        if not events and not runs:
            return
        await self._write(f"writing {len(batch)} effects", [(_INSERT_EVENT, events), *runs])

    async def record_reload(
        self,
        at: float,
        *,
        actor: str,
        path: str,
        sha256: str,
        outcome: ReloadOutcome,
        summary: str,
    ) -> None:
        """Append one policy reload to the audit trail (`outcome` is "ok" or "failed")."""
        row = (at, actor, path, sha256, outcome, summary)
        await self._write("recording a policy reload", [(_INSERT_RELOAD, [row])])

    async def write_rollups(self, rows: Sequence[RollupRow]) -> None:
        """Add `rows` to the per-minute record in one transaction (a row for a minute and key
        already there adds its value). Same error contract as `write`: all or nothing."""
        if not rows:
            return
        params = [(r.minute, r.dimension.value, r.key, r.value) for r in rows]
        await self._write(f"writing {len(rows)} rollups", [(_UPSERT_ROLLUP, params)])

    async def record_drill(
        self,
        *,
        started_at: float,
        finished_at: float,
        target: str,
        policy_sha256: str,
        passed: int,
        failed: int,
        results: str,
    ) -> int:
        """Append one drill run (`results`: its JSON report); return its id."""
        row = (started_at, finished_at, target, policy_sha256, passed, failed, results)
        async with self._lock:
            try:
                db = self._conn()
                await db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = await db.execute(_INSERT_DRILL, row)
                    await db.execute("COMMIT")
                except BaseException:
                    await self._rollback(db)
                    raise
            except _DB_ERRORS as exc:
                raise _wrap(f"{self._path}: recording a drill failed", exc) from exc
        return int(cursor.lastrowid or 0)

    async def prune(self, events_before: float, rollups_before: float | None = None) -> int:
        """Delete events older than `events_before` and, when given, rollup minutes older than
        `rollups_before`; return how many rows went. Bans, drills and the reload audit trail are
        never pruned. Deletes in short transactions, so writers wait one chunk at most."""
        total = await self._prune(_PRUNE_EVENTS, events_before, _PRUNE_CHUNK, "events")
        if rollups_before is not None:
            # a chunk of minutes (about 60 rows each) per transaction
            total += await self._prune(
                _PRUNE_ROLLUPS, int(rollups_before), max(1, _PRUNE_CHUNK // 60), "rollups"
            )
        return total

    async def _prune(self, sql: str, before: float, chunk: int, what: str) -> int:
        total = 0
        while True:
            async with self._lock:
                try:
                    db = self._conn()
                    await db.execute("BEGIN IMMEDIATE")
                    try:
                        cursor = await db.execute(sql, (before, chunk))
                        deleted = cursor.rowcount
                        await db.execute("COMMIT")
                    except BaseException:
                        await self._rollback(db)
                        raise
                except _DB_ERRORS as exc:
                    raise _wrap(f"{self._path}: pruning {what} failed", exc) from exc
            total += deleted
            if deleted == 0:
                return total

    async def _write(self, what: str, work: list[_Work]) -> None:
        """`work` in one transaction under the lock; one StoreError naming `what` on failure."""
        async with self._lock:
            try:
                await self._transaction(self._conn(), work)
            except _DB_ERRORS as exc:
                raise _wrap(f"{self._path}: {what} failed", exc) from exc

    async def _transaction(self, db: aiosqlite.Connection, work: list[_Work]) -> None:
        """`BEGIN IMMEDIATE` (take the write lock first, so `busy_timeout` applies), run, commit;
        roll back on any failure or cancellation. Called with the lock held."""
        await db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in work:
                if rows:
                    await db.executemany(sql, rows)
            await db.execute("COMMIT")
        except BaseException:
            await self._rollback(db)
            raise

    @staticmethod
    async def _rollback(db: aiosqlite.Connection) -> None:
        # Queued behind whatever still runs on the connection's thread, so it runs even when the
        # awaiting task is cancelled. SQLite may have rolled back already (SQLITE_FULL): fine.
        with contextlib.suppress(*_DB_ERRORS):
            await db.execute("ROLLBACK")

    # -- reads -----------------------------------------------------------------------------------

    async def _fetch(self, what: str, sql: str, params: Sequence[object]) -> list[_Row]:
        async with self._lock:
            try:
                rows = await self._conn().execute_fetchall(sql, params)
            except _DB_ERRORS as exc:
                raise _wrap(f"{self._path}: {what} failed", exc) from exc
        return cast("list[_Row]", rows)  # a list of plain tuples: no row_factory is set

    async def active_bans(self, now: float) -> list[BanRecord]:
        """The bans in force at `now`: for each ip its latest ban, if not lifted and `until > now`.
        Ordered by `until` (soonest to expire first), then write order."""
        rows = await self._fetch("reading active bans", _ACTIVE_BANS, (now,))
        return [BanRecord(*r) for r in rows]

    async def bans(
        self, since: float, until: float | None = None, ip: str | None = None
    ) -> list[BanRecord]:
        """The ban history: bans issued with `since <= issued_at < until` (no upper bound when
        `until` is None), of one `ip` when given, lifted or not, in write order (for reports)."""
        where = ["issued_at >= ?"]
        params: list[object] = [since]
        if until is not None:
            where.append("issued_at < ?")
            params.append(until)
        if ip is not None:
            where.append("ip = ?")
            params.append(ip)
        sql = f"SELECT {_BAN_COLUMNS} FROM bans WHERE {' AND '.join(where)} ORDER BY id"  # noqa: S608
        rows = await self._fetch("reading bans", sql, params)
        return [BanRecord(*r) for r in rows]

    async def offence_counts(self, since: float) -> dict[str, int]:
        """How many bans each ip was issued at or after `since` (escalation across restarts)."""
        rows = await self._fetch("counting offences", _OFFENCE_COUNTS, (since,))
        return {ip: count for ip, count in rows}

    async def events(
        self,
        since: float,
        until: float | None = None,
        limit: int = 1000,
        kinds: Collection[str] | None = None,
    ) -> list[EventRecord]:
        """Events with `since <= at < until` (no upper bound when `until` is None), only of `kinds`
        when given. At most `limit`: the newest ones, returned oldest first (newest last)."""
        if limit <= 0 or (kinds is not None and not kinds):
            return []
        where = ["at >= ?"]
        params: list[object] = [since]
        if until is not None:
            where.append("at < ?")
            params.append(until)
        if kinds is not None:
            kind_list = sorted(set(kinds))
            where.append(f"kind IN ({', '.join('?' * len(kind_list))})")
            params.extend(kind_list)
        params.append(limit)
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM (SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608 (no user text)
            f" WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC LIMIT ?) ORDER BY at, id"
        )
        rows = await self._fetch("reading events", sql, params)
        try:
            return [
                EventRecord(
                    r[0], r[1], r[2], _SEVERITY[r[3]], r[4], r[5], r[6], r[7], r[8], r[9], r[10]
                )
                for r in rows
            ]
        except KeyError as exc:
            raise StoreError(f"{self._path}: unknown severity in events: {exc}") from exc

    async def login_history(self, limit: int = 1_000_000) -> list[LoginSeen]:
        """The unusual-login history: one row per (account, country, hour), `count` logins, newest
        `last_seen` first when there are more than `limit` rows."""
        rows = await self._fetch(
            "reading the login history",
            "SELECT account, country, hour, last_seen, count FROM logins"
            " ORDER BY last_seen DESC LIMIT ?",
            (limit,),
        )
        return [LoginSeen(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def reloads(self, since: float) -> list[ReloadRecord]:
        """The policy reloads at or after `since`, oldest first."""
        rows = await self._fetch(
            "reading policy reloads",
            f"SELECT {_RELOAD_COLUMNS} FROM policy_reloads WHERE at >= ? ORDER BY at, id",  # noqa: S608
            (since,),
        )
        return [ReloadRecord(*r) for r in rows]

    async def rollups(
        self,
        since: float,
        until: float | None = None,
        dimensions: Collection[Dimension] | None = None,
    ) -> list[RollupRow]:
        """Rollup rows of the minutes with `since <= minute < until` (no upper bound when `until`
        is None), only of `dimensions` when given; in (minute, dimension, key) order."""
        if dimensions is not None and not dimensions:
            return []
        where = ["minute >= ?"]
        params: list[object] = [since]
        if until is not None:
            where.append("minute < ?")
            params.append(until)
        if dimensions is not None:
            names = sorted(d.value for d in dimensions)
            where.append(f"dimension IN ({', '.join('?' * len(names))})")
            params.extend(names)
        sql = (
            "SELECT minute, dimension, key, value FROM rollups"  # noqa: S608 (no user text)
            f" WHERE {' AND '.join(where)} ORDER BY minute, dimension, key"
        )
        rows = await self._fetch("reading rollups", sql, params)
        try:
            return [RollupRow(int(r[0]), Dimension(r[1]), r[2], float(r[3])) for r in rows]
        except ValueError as exc:
            raise StoreError(f"{self._path}: unknown rollup dimension: {exc}") from exc

    async def drills(self, since: float, until: float | None = None) -> list[DrillRecord]:
        """Drill runs started at `since <= started_at < until`, oldest first."""
        sql = f"SELECT {_DRILL_COLUMNS} FROM drills WHERE started_at >= ?"  # noqa: S608
        params: list[object] = [since]
        if until is not None:
            sql += " AND started_at < ?"
            params.append(until)
        rows = await self._fetch("reading drills", sql + " ORDER BY started_at, id", params)
        return [DrillRecord(*r) for r in rows]

    async def meta(self) -> dict[str, str]:
        """The `meta` table: `created_at` (epoch seconds) and a `schema.N` note per migration."""
        rows = await self._fetch("reading meta", "SELECT key, value FROM meta ORDER BY key", ())
        return {key: value for key, value in rows}

    async def schema_version(self) -> int:
        """`PRAGMA user_version` of the file (`SCHEMA_VERSION` once opened by this code)."""
        rows = await self._fetch("reading the schema version", "PRAGMA user_version", ())
        return int(rows[0][0])
