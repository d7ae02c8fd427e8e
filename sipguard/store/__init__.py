"""sipguard.store: bans, events and the policy-reload audit trail in SQLite (WAL), in batches.

`store/sqlite.py` is the only importer of aiosqlite; `store/schema.py` owns the file format and
its migrations.
"""

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
    "EventRecord",
    "ReloadOutcome",
    "ReloadRecord",
    "SchemaError",
    "Storable",
    "Store",
    "StoreError",
]
