"""sipguard.store: bans, events, rollups, drills and the reload audit trail in SQLite (WAL).

`store/sqlite.py` is the only importer of aiosqlite; `store/schema.py` owns the file format and
its migrations.
"""

from sipguard.store.rollup import Dimension, DrillRecord, RollupRow, minute_of
from sipguard.store.schema import SCHEMA_VERSION, SchemaError, StoreError
from sipguard.store.sqlite import (
    BanRecord,
    EventRecord,
    ReloadOutcome,
    ReloadRecord,
    Storable,
    Store,
)

__all__ = [
    "SCHEMA_VERSION",
    "BanRecord",
    "Dimension",
    "DrillRecord",
    "EventRecord",
    "ReloadOutcome",
    "ReloadRecord",
    "RollupRow",
    "SchemaError",
    "Storable",
    "Store",
    "StoreError",
    "minute_of",
]
