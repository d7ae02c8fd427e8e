"""The SQLite store on real files in tmp_path: schema and migrations, batch semantics, queries,
concurrent readers, and the error contract of `write` (fail whole, retry writes exactly once)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

import sipguard.store.sqlite as store_sqlite
from sipguard.engine.effects import BanIssued, BanLifted, SecurityEvent
from sipguard.policy.model import Severity
from sipguard.store import (
    SCHEMA_VERSION,
    BanRecord,
    Dimension,
    DrillRecord,
    EventRecord,
    ReloadRecord,
    RollupRow,
    SchemaError,
    Storable,
    Store,
    StoreError,
    minute_of,
)
from sipguard.store.schema import APPLICATION_ID, MIGRATIONS, Migration, migrate

T0 = 1_700_000_000.0


def ban(
    ip: str,
    at: float = T0,
    for_: float = 600.0,
    *,
    reason: str = "rate_limited",
    offences: int = 1,
    actor: str = "engine",
) -> BanIssued:
    return BanIssued(
        ip=ip,
        issued_at=at,
        until=at + for_,
        reason=reason,
        rule="limits.REGISTER",
        evidence="12 REGISTER/60s",
        offences=offences,
        actor=actor,
    )


def event(at: float, kind: str = "rate_limited", ip: str = "203.0.113.7") -> SecurityEvent:
    return SecurityEvent(at=at, kind=kind, severity=Severity.WARNING, ip=ip, port=5060)


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as another process (or the sqlite3 shell) would have."""
    return sqlite3.connect(path, isolation_level=None, timeout=0)


def count(path: Path, table: str) -> int:
    conn = raw(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# -- open, close, schema --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_creates_folder_and_file_with_modes_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "sipguard" / "sipguard.db"
    old = os.umask(0o022)
    try:
        store = await Store.open(str(path))
    finally:
        os.umask(old)
    async with store:
        assert path.parent.stat().st_mode & 0o777 == 0o750
        assert path.stat().st_mode & 0o777 == 0o640
        assert await store.schema_version() == SCHEMA_VERSION
        db = store._conn()
        pragmas = {}
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
            rows = list(await db.execute_fetchall(f"PRAGMA {name}"))
            pragmas[name] = rows[0][0]
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 1,  # NORMAL
            "busy_timeout": 5000,
            "foreign_keys": 1,
        }
        meta = await store.meta()
        assert float(meta["created_at"]) > 0
        assert set(meta) == {"created_at", *(f"schema.{m.version}" for m in MIGRATIONS)}
    assert store.closed
    conn = raw(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"bans", "events", "policy_reloads", "meta", "logins", "rollups", "drills"}
    conn.close()


@pytest.mark.asyncio
async def test_reopen_keeps_bans_and_offences(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path) as store:
        await store.write([ban("198.51.100.1"), ban("198.51.100.2", for_=86400, offences=3)])
    async with await Store.open(path) as store:
        active = await store.active_bans(T0 + 1)
        assert [b.ip for b in active] == ["198.51.100.1", "198.51.100.2"]
        assert active[1] == BanRecord(
            id=2,
            ip="198.51.100.2",
            issued_at=T0,
            until=T0 + 86400,
            reason="rate_limited",
            rule="limits.REGISTER",
            evidence="12 REGISTER/60s",
            offences=3,
            actor="engine",
            lifted_at=None,
            lifted_by=None,
            lift_reason=None,
        )
        assert await store.offence_counts(T0) == {"198.51.100.1": 1, "198.51.100.2": 1}
        assert await store.meta() == await store.meta()  # reopening does not migrate again


@pytest.mark.asyncio
async def test_closed_store_raises_store_error_and_close_is_idempotent(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed") as err:
        await store.write([ban("198.51.100.1")])
    assert not err.value.retryable
    with pytest.raises(StoreError, match="closed"):
        await store.active_bans(T0)


@pytest.mark.asyncio
async def test_a_newer_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path):
        pass
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(SchemaError, match=f"version {SCHEMA_VERSION + 5} is newer") as err:
        await Store.open(path)
    assert f"({SCHEMA_VERSION})" in str(err.value)
    assert not err.value.retryable
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5
    conn.close()


@pytest.mark.asyncio
async def test_other_programs_databases_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    conn = raw(foreign)
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(SchemaError, match="not a sipguard store"):
        await Store.open(foreign)

    marked = tmp_path / "marked.db"
    conn = raw(marked)
    conn.execute("PRAGMA application_id = 42")
    conn.close()
    with pytest.raises(SchemaError, match="application_id 0x0000002a"):
        await Store.open(marked)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, " * 100)
    with pytest.raises(StoreError, match="cannot open"):
        await Store.open(garbage)


def v2_step() -> Migration:
    return Migration(
        version=2,
        summary="ban notes",
        statements=(
            "ALTER TABLE bans ADD COLUMN note TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX bans_by_note ON bans (note)",
        ),
    )


def test_a_v1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = raw(path)
    assert migrate(conn, now=T0, steps=MIGRATIONS[:1]) == 0
    conn.execute(
        "INSERT INTO bans (ip, issued_at, until, reason, actor) VALUES (?, ?, ?, 'r', 'e')",
        ("198.51.100.9", T0, T0 + 60),
    )
    assert migrate(conn, now=T0 + 1, steps=MIGRATIONS[:1]) == 1  # current: nothing to do
    assert migrate(conn, now=T0 + 2, steps=(*MIGRATIONS[:1], v2_step())) == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT ip, note FROM bans").fetchall() == [("198.51.100.9", "")]
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["created_at"] == repr(T0)
    assert meta["schema.2"] == f"ban notes (applied at {T0 + 2!r})"
    conn.close()


def test_a_failing_step_rolls_back_and_keeps_the_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = raw(path)
    migrate(conn, now=T0, steps=MIGRATIONS[:1])
    broken = Migration(
        version=2,
        summary="broken",
        statements=("CREATE TABLE half (x)", "CREATE TABLE bans (x)"),  # bans exists: fails
    )
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn, now=T0, steps=(*MIGRATIONS[:1], broken))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not conn.in_transaction
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half" not in names
    conn.close()


def test_migration_steps_must_be_numbered_from_one(tmp_path: Path) -> None:
    conn = raw(tmp_path / "s.db")
    with pytest.raises(ValueError, match="numbered"):
        migrate(conn, now=T0, steps=(v2_step(),))
    conn.close()


@pytest.mark.asyncio
async def test_a_store_newer_than_the_code_after_an_upgrade_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = raw(path)
    migrate(conn, now=T0, steps=(*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "future", ())))
    conn.close()
    with pytest.raises(SchemaError, match="newer than this sipguard"):
        await Store.open(path)


@pytest.mark.asyncio
async def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "s.db"
    stores = await asyncio.gather(*(Store.open(path) for _ in range(6)))
    try:
        for store in stores:
            assert await store.schema_version() == SCHEMA_VERSION
        await stores[0].write([ban("198.51.100.1")])
        assert len(await stores[3].active_bans(T0)) == 1
    finally:
        for store in stores:
            await store.close()


# -- write: batch semantics ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_issue_then_a_lift_in_one_batch_ends_lifted(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                ban("198.51.100.1"),
                event(T0),
                BanLifted("198.51.100.1", at=T0 + 5, why="manual", actor="cli:root"),
            ]
        )
        assert await store.active_bans(T0 + 1) == []
        [record] = await store.bans(T0)
        assert (record.lifted_at, record.lifted_by, record.lift_reason) == (
            T0 + 5,
            "cli:root",
            "manual",
        )
        assert len(await store.events(T0)) == 1


@pytest.mark.asyncio
async def test_issue_lift_issue_in_one_batch_ends_banned(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                ban("198.51.100.1", reason="rule"),
                BanLifted("198.51.100.1", at=T0 + 1, why="manual"),
                ban("198.51.100.1", at=T0 + 2, reason="manual", actor="cli:root"),
            ]
        )
        [active] = await store.active_bans(T0 + 3)
        assert (active.reason, active.actor, active.lifted_at) == ("manual", "cli:root", None)
        first, second = await store.bans(T0)
        assert first.lift_reason == "manual"
        assert second.lifted_at is None


@pytest.mark.asyncio
async def test_a_lift_closes_only_the_latest_open_ban_and_a_stray_lift_is_a_no_op(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write([BanLifted("192.0.2.1", at=T0, why="expired")])  # nothing to lift
        await store.write([ban("198.51.100.1", for_=3600), ban("198.51.100.1", at=T0 + 10)])
        await store.write([BanLifted("198.51.100.1", at=T0 + 20, why="expired")])
        older, latest = await store.bans(T0)
        assert older.lifted_at is None
        assert latest.lifted_at == T0 + 20
        # the ip's state is its latest ban: lifted, so not active, though the older row is open
        assert await store.active_bans(T0 + 30) == []
        assert await store.bans(T0 - 100) == [older, latest]
        assert count(store.path, "bans") == 2


@pytest.mark.asyncio
async def test_an_empty_batch_writes_nothing_and_a_non_effect_is_a_type_error(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write([])
        with pytest.raises(TypeError, match="cannot write str"):
            await store.write([ban("198.51.100.1"), "not an effect"])  # type: ignore[list-item]
        assert await store.bans(0) == []


@pytest.mark.asyncio
async def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        poison = SecurityEvent(at=T0, kind="rule", severity=Severity.INFO, port=2**70)
        with pytest.raises(StoreError, match="writing 3 effects failed") as err:
            await store.write([event(T0), ban("198.51.100.1"), poison])
        assert not err.value.retryable  # the data itself was refused: retrying cannot help
        assert isinstance(err.value.__cause__, OverflowError)
        assert await store.events(0) == []
        assert await store.bans(0) == []
        await store.write([event(T0), ban("198.51.100.1")])  # the store is still usable
        assert len(await store.events(0)) == 1


@pytest.mark.asyncio
async def test_concurrent_writes_on_one_store_are_serialised(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        batches: list[list[Storable]] = [
            [event(T0 + i), ban(f"198.51.100.{i}", at=T0 + i)] for i in range(20)
        ]
        await asyncio.gather(*(store.write(b) for b in batches))
        assert len(await store.events(0)) == 20
        assert len(await store.active_bans(T0)) == 20


# -- queries -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_active_bans_latest_per_ip_expiry_and_order(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                ban("198.51.100.1", for_=86400),  # superseded by the re-ban below
                ban("198.51.100.2", for_=300),
                ban("198.51.100.3", for_=100),
                ban("198.51.100.4", for_=200),
                BanLifted("198.51.100.4", at=T0 + 1, why="manual"),
                ban("198.51.100.1", at=T0 + 10, for_=900, offences=2),
            ]
        )
        active = await store.active_bans(T0 + 50)
        assert [(b.ip, b.until) for b in active] == [
            ("198.51.100.3", T0 + 100),
            ("198.51.100.2", T0 + 300),
            ("198.51.100.1", T0 + 910),
        ]
        assert active[2].offences == 2
        # `until > now`: a ban ending exactly now is over
        assert [b.ip for b in await store.active_bans(T0 + 300)] == ["198.51.100.1"]
        # the superseded 24 h ban does not come back when the re-ban expires
        assert await store.active_bans(T0 + 1000) == []


@pytest.mark.asyncio
async def test_offence_counts_since(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                ban("198.51.100.1", at=T0 - 7200),
                ban("198.51.100.1", at=T0),
                BanLifted("198.51.100.1", at=T0 + 1, why="manual"),
                ban("198.51.100.1", at=T0 + 100),
                ban("198.51.100.2", at=T0 + 100),
            ]
        )
        assert await store.offence_counts(T0) == {"198.51.100.1": 2, "198.51.100.2": 1}
        assert await store.offence_counts(T0 - 86400) == {"198.51.100.1": 3, "198.51.100.2": 1}
        assert await store.offence_counts(T0 + 101) == {}


@pytest.mark.asyncio
async def test_events_window_limit_kinds_and_fields(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        full = SecurityEvent(
            at=T0 + 3,
            kind="country_denied",
            severity=Severity.CRITICAL,
            ip="2001:db8::",
            port=5061,
            country="NO",
            account="alice",
            method="REGISTER",
            rule="benelux-only",
            detail="UA=friendly-scanner",
        )
        await store.write(
            [event(T0 + 5), event(T0 + 1, kind="scanner"), full, event(T0 + 4), event(T0 + 2)]
        )
        every = await store.events(T0)
        assert [e.at for e in every] == [T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 5]  # newest last
        assert every[2] == EventRecord(
            id=3,
            at=T0 + 3,
            kind="country_denied",
            severity=Severity.CRITICAL,
            ip="2001:db8::",
            port=5061,
            country="NO",
            account="alice",
            method="REGISTER",
            rule="benelux-only",
            detail="UA=friendly-scanner",
        )
        assert (every[0].country, every[0].account, every[0].method) == (None, None, None)
        # since is inclusive, until exclusive
        assert [e.at for e in await store.events(T0 + 2, until=T0 + 4)] == [T0 + 2, T0 + 3]
        # the limit keeps the newest, still oldest first
        assert [e.at for e in await store.events(T0, limit=2)] == [T0 + 4, T0 + 5]
        assert await store.events(T0, limit=0) == []
        kinds = await store.events(T0, kinds={"scanner", "country_denied"})
        assert [e.kind for e in kinds] == ["scanner", "country_denied"]
        assert await store.events(T0, kinds=[]) == []
        assert await store.events(T0 + 6) == []


@pytest.mark.asyncio
async def test_events_at_the_same_time_keep_write_order(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write([event(T0, kind=k) for k in ("a", "b", "c")])
        assert [e.kind for e in await store.events(T0)] == ["a", "b", "c"]
        assert [e.kind for e in await store.events(T0, limit=2)] == ["b", "c"]


@pytest.mark.asyncio
async def test_reload_audit_trail(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path) as store:
        await store.record_reload(
            T0,
            actor="SIGHUP",
            path="policies/default.yaml",
            sha256="ab" * 32,
            outcome="ok",
            summary="rules +1 (scanners)",
        )
        await store.record_reload(
            T0 + 60,
            actor="file-watch",
            path="policies/default.yaml",
            sha256="cd" * 32,
            outcome="failed",
            summary="policies/default.yaml:3:7: unknown key 'limts'",
        )
        with pytest.raises(StoreError, match="recording a policy reload failed") as err:
            await store.record_reload(
                T0 + 61,
                actor="x",
                path="p",
                sha256="",
                outcome="maybe",  # type: ignore[arg-type]
                summary="",
            )
        assert isinstance(err.value.__cause__, sqlite3.IntegrityError)
        assert not err.value.retryable
    async with await Store.open(path) as store:
        assert await store.reloads(T0 + 1) == [
            ReloadRecord(
                id=2,
                at=T0 + 60,
                actor="file-watch",
                path="policies/default.yaml",
                sha256="cd" * 32,
                outcome="failed",
                summary="policies/default.yaml:3:7: unknown key 'limts'",
            )
        ]
        assert [r.outcome for r in await store.reloads(0)] == ["ok", "failed"]


@pytest.mark.asyncio
async def test_prune_deletes_old_events_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "_PRUNE_CHUNK", 3)  # several chunks
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                *(event(T0 + i) for i in range(10)),
                ban("198.51.100.1", at=T0 - 86400, for_=60),  # long expired
                ban("198.51.100.2", at=T0 - 86400, for_=10 * 86400),  # still active
            ]
        )
        await store.record_reload(
            T0 - 86400, actor="SIGHUP", path="p", sha256="", outcome="ok", summary=""
        )
        assert await store.prune(T0 + 7) == 7
        assert [e.at for e in await store.events(0)] == [T0 + 7, T0 + 8, T0 + 9]
        assert await store.prune(T0 + 7) == 0
        assert len(await store.bans(0)) == 2
        assert [b.ip for b in await store.active_bans(T0)] == ["198.51.100.2"]
        assert len(await store.reloads(0)) == 1


# -- concurrent readers --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_second_store_reads_while_the_first_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path) as daemon:
        await daemon.write([ban("198.51.100.1"), event(T0)])
        async with await Store.open(path) as cli:
            assert [b.ip for b in await cli.active_bans(T0)] == ["198.51.100.1"]
            await daemon.write([ban("198.51.100.2"), event(T0 + 1)])
            assert [b.ip for b in await cli.active_bans(T0)] == ["198.51.100.1", "198.51.100.2"]
            assert len(await cli.events(T0)) == 2
        assert not daemon.closed
        await daemon.write([event(T0 + 2)])  # the reader closing leaves the writer working
        assert len(await daemon.events(T0)) == 3


@pytest.mark.asyncio
async def test_readers_are_not_blocked_by_a_writer_in_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path) as daemon:
        await daemon.write([ban("198.51.100.1")])
    writer = raw(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO bans (ip, issued_at, until, reason, actor) VALUES ('x', ?, ?, 'r', 'e')",
        (T0, T0 + 60),
    )
    try:
        # opening a current store only reads, so it does not need the write lock either
        async with await Store.open(path, busy_timeout=0) as cli:
            assert [b.ip for b in await cli.active_bans(T0)] == ["198.51.100.1"]  # committed only
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- the error contract of write -----------------------------------------------------------------


def big_batch(n: int) -> list[Storable]:
    batch: list[Storable] = [event(T0 + i) for i in range(n)]
    batch += [ban(f"198.51.100.{i}") for i in range(50)]
    batch.append(BanLifted("198.51.100.0", at=T0 + 1, why="manual"))
    return batch


async def assert_written_once(store: Store, n: int) -> None:
    assert len(await store.events(0, limit=10 * n)) == n
    assert len(await store.bans(0)) == 50
    assert len(await store.active_bans(T0)) == 49
    assert count(store.path, "events") == n


@pytest.mark.asyncio
async def test_a_full_disk_fails_the_batch_whole_and_a_retry_writes_it_once(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        db = store._conn()
        [(pages,)] = await db.execute_fetchall("PRAGMA page_count")
        await db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        batch = big_batch(2000)
        with pytest.raises(StoreError, match="full") as err:
            await store.write(batch)
        assert err.value.retryable
        assert isinstance(err.value.__cause__, sqlite3.OperationalError)
        assert await store.bans(0) == []
        assert await store.events(0) == []
        with pytest.raises(StoreError):
            await store.write(batch)  # still full: fails again, still nothing half-written
        await db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        await store.write(batch)
        await assert_written_once(store, 2000)


@pytest.mark.asyncio
async def test_a_locked_file_fails_the_batch_and_a_retry_writes_it_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await Store.open(path, busy_timeout=0) as store:
        other = raw(path)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        batch = big_batch(100)
        with pytest.raises(StoreError, match="locked") as err:
            await store.write(batch)
        assert err.value.retryable
        other.execute("COMMIT")
        other.close()
        await store.write(batch)
        await assert_written_once(store, 100)


@pytest.mark.asyncio
async def test_a_connection_closed_under_the_store_fails_and_a_new_store_takes_the_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = await Store.open(path)
    await store._conn().close()  # the connection dies under the store
    batch = big_batch(100)
    with pytest.raises(StoreError, match="writing 151 effects failed") as err:
        await store.write(batch)
    assert not err.value.retryable  # this Store will not heal: open another
    await store.close()
    async with await Store.open(path) as again:
        await again.write(batch)
        await assert_written_once(again, 100)


@pytest.mark.asyncio
async def test_a_read_only_database_fails_the_batch_and_a_retry_writes_it_once(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        db = store._conn()
        await db.execute("PRAGMA query_only = ON")  # the file went read-only
        batch = big_batch(100)
        with pytest.raises(StoreError, match="readonly") as err:
            await store.write(batch)
        assert err.value.retryable
        assert await store.active_bans(T0) == []  # reads still work
        await db.execute("PRAGMA query_only = OFF")
        await store.write(batch)
        await assert_written_once(store, 100)


# -- rollups and drills --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rollups_add_up_per_minute_and_key_and_read_back_by_dimension(
    tmp_path: Path,
) -> None:
    m0 = minute_of(T0)
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write_rollups(
            [
                RollupRow(m0, Dimension.MESSAGES, "outside:INVITE", 10),
                RollupRow(m0, Dimension.COUNTRIES, "NL", 7),
                RollupRow(m0 + 60, Dimension.CALL_MINUTES, "", 1.5),
            ]
        )
        # a second flush of the same minute (or a restart) adds to the row, never replaces it
        await store.write_rollups([RollupRow(m0, Dimension.MESSAGES, "outside:INVITE", 5)])
        assert await store.rollups(m0) == [
            RollupRow(m0, Dimension.COUNTRIES, "NL", 7),
            RollupRow(m0, Dimension.MESSAGES, "outside:INVITE", 15),
            RollupRow(m0 + 60, Dimension.CALL_MINUTES, "", 1.5),
        ]
        assert await store.rollups(m0, m0 + 60, dimensions=[Dimension.COUNTRIES]) == [
            RollupRow(m0, Dimension.COUNTRIES, "NL", 7)
        ]
        assert await store.rollups(m0, dimensions=[]) == []


@pytest.mark.asyncio
async def test_prune_removes_old_rollup_minutes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "_PRUNE_CHUNK", 3)  # one minute per transaction
    m0 = minute_of(T0)
    rows = [
        RollupRow(m0 + 60 * i, dim, "", 1)
        for i in range(5)
        for dim in (Dimension.CALLS, Dimension.REGISTRATIONS)
    ]
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write_rollups(rows)
        await store.write([event(T0)])
        assert await store.prune(T0 - 1, rollups_before=m0 + 180) == 6
        assert sorted({r.minute for r in await store.rollups(0)}) == [m0 + 180, m0 + 240]
        assert len(await store.events(0)) == 1


@pytest.mark.asyncio
async def test_drills_are_recorded_and_read_back_in_order(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        second = await store.record_drill(
            started_at=T0 + 100,
            finished_at=T0 + 130,
            target="127.0.0.1:5060",
            policy_sha256="ab",
            passed=9,
            failed=1,
            results='[{"attack": "scanner"}]',
        )
        first = await store.record_drill(
            started_at=T0,
            finished_at=T0 + 20,
            target="127.0.0.1:5060",
            policy_sha256="ab",
            passed=10,
            failed=0,
            results="[]",
        )
        drills = await store.drills(0)
        assert [d.id for d in drills] == [first, second]
        assert drills[1] == DrillRecord(
            second, T0 + 100, T0 + 130, "127.0.0.1:5060", "ab", 9, 1, '[{"attack": "scanner"}]'
        )
        assert await store.drills(T0 + 1, T0 + 200) == [drills[1]]
