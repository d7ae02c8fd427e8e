"""Read a period of a policy's store (and its GeoIP data's age) and summarise it: `build_report`.

The adapter of the report: it opens the store the policy names with its own `Store` (a reader
beside a running sipguard: WAL lets both work), reads what the period needs, bounded, closes it,
and hands the records to the pure `aggregate.summarise`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sipguard import __version__
from sipguard.io.geoip import GeoDatabaseError, GeoResolver
from sipguard.policy.model import GeoSpec, Policy
from sipguard.report.aggregate import EVENT_LIMIT, Inputs, RollupTally, summarise
from sipguard.report.model import GeoState, Report
from sipguard.store import Store, StoreError

__all__ = ["build_report"]

ROLLUP_CHUNK: Final = 86400.0  # seconds of rollups read at a time (about 86k rows at most)


async def build_report(
    policy: Policy, since: float, until: float, *, now: float | None = None
) -> Report:
    """Summarise `since <= t < until` (epoch seconds) of the store `policy` names.

    Raises `ValueError` for an empty period and `StoreError` when the store is missing or
    unreadable (a report never creates a store). `now` (default: the clock) dates the report
    and the GeoIP data's age."""
    if not until > since:
        raise ValueError("the period is empty: its end must come after its start")
    generated = time.time() if now is None else now
    path = Path(policy.storage_path)
    if not await asyncio.to_thread(path.is_file):
        raise StoreError(f"{path}: no store here (has sipguard run with this policy?)")
    async with await Store.open(path) as store:
        tally = RollupTally(since, until)
        start = since
        while start < until:
            end = min(until, start + ROLLUP_CHUNK)
            tally.add(await store.rollups(start, end))
            start = end
        events = await store.events(since, until, limit=EVENT_LIMIT + 1)
        cut = len(events) > EVENT_LIMIT
        if cut:
            events = events[1:]  # the newest EVENT_LIMIT
        # a ban lifted in the period was issued at most the longest ban before it
        bans = await store.bans(since - policy.bans.max, until)
        reloads = await store.reloads(since)
        drills = await store.drills(since, until)
    geo = await asyncio.to_thread(_geo_state, policy.geo, generated)
    return summarise(
        Inputs(
            since=since,
            until=until,
            generated_at=generated,
            version=__version__,
            policy_path=policy.source_path,
            policy_sha256=policy.source_sha256,
            store_path=str(path),
            rollups=tally,
            events=events,
            events_cut=cut,
            bans=bans,
            reloads=reloads,
            drills=drills,
            geo=geo,
        )
    )


def _geo_state(spec: GeoSpec, now: float) -> GeoState:
    """Blocking (opens the database): what the data is and how old, as of `now`."""
    today = datetime.fromtimestamp(now, UTC).date()
    try:
        resolver = GeoResolver.open(spec, cache_size=1)
    except GeoDatabaseError as exc:
        return GeoState(spec.database, None, None, spec.max_age_days, False, str(exc))
    try:
        db = resolver.database
        built = db.built
        return GeoState(
            db.description,
            built.isoformat() if built is not None else None,
            db.age_days(today),
            spec.max_age_days,
            resolver.is_stale(today),
        )
    finally:
        resolver.close()
