"""GeoIP databases: the adapters that read country data, and `sipguard geo` answers.

Opening a database reads files: call `open_geo` / `GeoResolver.open` / `describe_ips` in a thread
(`asyncio.to_thread`), never on the event loop (STYLE D3). Lookups never raise: an address a
database does not know, or text that is not an address, is None.

* `builtin`: `iptocc`, Regional Internet Registry allocation data (the five RIRs'
  delegated-extended files) compiled into the package's Rust extension. Its lookup is a binary
  search in native code, about 50 ns a call, so it is used as is. The data carries no date of its
  own; the date reported is the wheel's build time from the CycloneDX SBOM that iptocc ships in
  its dist-info (`metadata.timestamp`). iptocc's nightly job fetches the RIR files, regenerates the
  tables and releases when they changed, so that is the day the data was fetched (or, for a
  release without a data change, an upper bound).
* `mmdb`: any MaxMind DB country database: GeoLite2/GeoIP2 Country, City or Enterprise and DB-IP
  (read through `geoip2`'s `country`/`city`/`enterprise`, chosen by `metadata().database_type`),
  and flat schemas such as IPinfo Lite (`country_code` at the top level, read with `maxminddb`).
  The file is memory-mapped: replace it atomically (write a new file, then rename it over the old
  one, as `geoipupdate` does), never by rewriting it in place, then reload.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import geoip2.database
import geoip2.errors
import geoip2.models
import maxminddb
from iptocc import country_code as _iptocc_country_code

from sipguard.engine.geo import (
    DEFAULT_CACHE_SIZE,
    CountryOf,
    GeoCache,
    GeoLookup,
    Origin,
    OverrideTable,
    age_days,
    is_stale,
)
from sipguard.policy.model import BUILTIN_GEO, GeoSpec

__all__ = [
    "BuiltinGeo",
    "GeoAnswer",
    "GeoDatabase",
    "GeoDatabaseError",
    "GeoResolver",
    "MmdbGeo",
    "describe_ips",
    "open_geo",
]


class GeoDatabaseError(Exception):
    """The database cannot be opened or holds no country data. A reload that hits this keeps the
    database it has."""


class GeoDatabase(Protocol):
    """What the resolver needs from a country database."""

    @property
    def source(self) -> str:
        """`builtin` or `mmdb`."""
        ...

    @property
    def description(self) -> str:
        """What it is, for humans: type and path, or package and version."""
        ...

    @property
    def built(self) -> datetime.date | None:
        """When the data was built, when known."""
        ...

    def lookup(self, ip: str) -> str | None:
        """ISO 3166-1 alpha-2 code, upper case, or None. Never raises."""
        ...

    def age_days(self, today: datetime.date) -> int | None: ...

    def is_stale(self, today: datetime.date, max_age_days: int) -> bool: ...

    def close(self) -> None: ...


def _country(code: object) -> str | None:
    """A database's country value as an upper-case alpha-2 code, or None for anything else."""
    if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
        return code.upper()
    return None


# ------------------------------------------------------------------------------------------ builtin


class BuiltinGeo:
    """RIR allocation data shipped with `iptocc` (no licence key, no download)."""

    __slots__ = ("built", "description", "version")

    source = BUILTIN_GEO

    def __init__(self) -> None:
        self.version = _iptocc_version()
        self.built = _iptocc_data_date()
        when = self.built.isoformat() if self.built else "date unknown"
        self.description = f"iptocc {self.version} RIR allocation data ({when})"

    def lookup(self, ip: str) -> str | None:
        # iptocc returns None for junk text and unallocated space; it raises only for a non-str.
        return _iptocc_country_code(ip)

    def age_days(self, today: datetime.date) -> int | None:
        return age_days(self.built, today)

    def is_stale(self, today: datetime.date, max_age_days: int) -> bool:
        return is_stale(self.built, today, max_age_days)

    def close(self) -> None:
        pass


def _iptocc_version() -> str:
    try:
        return importlib.metadata.version("iptocc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _iptocc_data_date() -> datetime.date | None:
    """The build date in the SBOM that iptocc's wheel carries (`*.dist-info/sboms/*.json`)."""
    try:
        files = importlib.metadata.distribution("iptocc").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for path in files:
        if len(path.parts) < 2 or path.parts[-2] != "sboms" or path.suffix != ".json":
            continue
        try:
            stamp = json.loads(path.read_text(encoding="utf-8"))["metadata"]["timestamp"]
            return datetime.date.fromisoformat(stamp[:10])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


# --------------------------------------------------------------------------------------------- mmdb

_Model = geoip2.models.Country  # City and Enterprise are subclasses
# database_type words of MaxMind DBs that carry no country (ASN, ISP, ...): refused at open, so a
# wrong file fails loudly instead of making every source "unknown".
_NO_COUNTRY_TYPES = ("ASN", "ISP", "Domain", "Connection-Type", "Anonymous", "IP-Risk", "Densit")


class MmdbGeo:
    """A MaxMind DB (`.mmdb`) country, city or enterprise database."""

    __slots__ = (
        "_flat",
        "_query",
        "_reader",
        "built",
        "database_type",
        "description",
        "errors",
        "path",
    )

    source = "mmdb"

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            reader = geoip2.database.Reader(path)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc
        meta = reader.metadata()
        self.database_type: str = meta.database_type
        self.built = _epoch_date(meta.build_epoch)
        self.description = f"{self.database_type} {path}"
        self.errors = 0  # lookups that failed for another reason than "not in the database"
        self._reader = reader
        self._flat: maxminddb.Reader | None = None
        self._query: Callable[[str], _Model] | None = None
        kind = self.database_type
        if "Enterprise" in kind:
            self._query = reader.enterprise
        elif "City" in kind:
            self._query = reader.city
        elif "Country" in kind:
            self._query = reader.country
        elif any(word in kind for word in _NO_COUNTRY_TYPES):
            reader.close()
            raise GeoDatabaseError(
                f"{path}: a {kind} database has no countries; use a Country or City database"
            )
        else:  # not MaxMind's schema (IPinfo Lite, ...): read the records as they are
            reader.close()
            try:
                self._flat = maxminddb.open_database(path)
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc

    def lookup(self, ip: str) -> str | None:
        if self._query is None:
            return self._lookup_flat(ip)
        try:
            found = self._query(ip)
        except geoip2.errors.AddressNotFoundError:
            return None
        except ValueError:  # not an IP address
            return None
        except (TypeError, maxminddb.InvalidDatabaseError):  # a damaged record or file
            self.errors += 1
            return None
        # A few networks carry only the registry's country (e.g. some anycast and satellite ranges).
        return _country(found.country.iso_code) or _country(found.registered_country.iso_code)

    def _lookup_flat(self, ip: str) -> str | None:
        assert self._flat is not None
        try:
            record = self._flat.get(ip)
        except ValueError:
            return None
        except maxminddb.InvalidDatabaseError:
            self.errors += 1
            return None
        if not isinstance(record, dict):
            return None
        code = _country(record.get("country_code"))  # IPinfo Lite: flat, "country" is the name
        if code is None:
            nested = record.get("country")
            if isinstance(nested, dict):
                code = _country(nested.get("iso_code"))
        return code

    def age_days(self, today: datetime.date) -> int | None:
        return age_days(self.built, today)

    def is_stale(self, today: datetime.date, max_age_days: int) -> bool:
        return is_stale(self.built, today, max_age_days)

    def close(self) -> None:
        if self._flat is not None:
            self._flat.close()
        else:
            self._reader.close()


def _epoch_date(epoch: int) -> datetime.date | None:
    try:
        return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def open_geo(spec: GeoSpec) -> GeoDatabase:
    """Open the database `spec.database` names (blocking: run it in a thread).

    Raises `GeoDatabaseError` when the file cannot be read or is not a country database."""
    if spec.database == BUILTIN_GEO:
        return BuiltinGeo()
    return MmdbGeo(spec.database)


# ----------------------------------------------------------------------------------------- resolver


@dataclass(frozen=True, slots=True)
class GeoAnswer:
    """One row of `sipguard geo IP...`."""

    ip: str
    country: str | None
    source: str  # override, builtin, mmdb, private, none, invalid
    database: str  # the database's description
    built: datetime.date | None
    age_days: int | None
    stale: bool
    error: str | None = None


class GeoResolver:
    """Overrides, non-routable addresses, the database and the per-address cache for one policy.

    `lookup` is the engine's `GeoLookup` (`cache.lookup`). Build a new resolver when the policy or
    the database changes; `close()` the old one's database once nothing uses it."""

    __slots__ = ("_uncached", "cache", "database", "lookup", "max_age_days")

    def __init__(
        self, spec: GeoSpec, database: GeoDatabase, *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self.database = database
        self.max_age_days = spec.max_age_days
        self._uncached = CountryOf(database.lookup, OverrideTable(spec.overrides))
        self.cache = GeoCache(self._uncached, cap=cache_size)
        self.lookup: GeoLookup = self.cache.lookup

    @classmethod
    def open(cls, spec: GeoSpec, *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoResolver:
        """Open `spec.database` and build the resolver (blocking: run it in a thread)."""
        return cls(spec, open_geo(spec), cache_size=cache_size)

    def explain(self, ip: str) -> tuple[str | None, str]:
        """(country, the source that answered: override, builtin, mmdb, private, none, invalid);
        uncached."""
        country, origin = self._uncached.explain(ip)
        return country, self.database.source if origin is Origin.DATABASE else origin.value

    def answer(self, ip: str, today: datetime.date) -> GeoAnswer:
        country, source = self.explain(ip)
        error = f"not an IP address: {ip!r}" if source == Origin.INVALID.value else None
        return GeoAnswer(
            ip=ip,
            country=country,
            source=source,
            database=self.database.description,
            built=self.database.built,
            age_days=self.database.age_days(today),
            stale=self.is_stale(today),
            error=error,
        )

    def is_stale(self, today: datetime.date) -> bool:
        return self.database.is_stale(today, self.max_age_days)

    def stale_warning(self, today: datetime.date) -> str | None:
        """A one-line warning when the database is older than `geo.max_age_days`, else None."""
        if not self.is_stale(today):
            return None
        return (
            f"GeoIP data is {self.database.age_days(today)} days old (built {self.database.built}, "
            f"geo.max_age_days {self.max_age_days}): {self.database.description}"
        )

    def close(self) -> None:
        self.database.close()


def describe_ips(spec: GeoSpec, ips: list[str], today: datetime.date) -> list[GeoAnswer]:
    """`sipguard geo IP...`: one row per address, in order. Text that is not an address gives a row
    with `error` set. Blocking (opens the database); raises `GeoDatabaseError` when it cannot."""
    resolver = GeoResolver.open(spec, cache_size=1)
    try:
        return [resolver.answer(ip.strip(), today) for ip in ips]
    finally:
        resolver.close()
