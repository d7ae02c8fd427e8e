"""Deployment checks: is the GeoIP data current, is the PBX trusted, are the admin endpoints
(control socket, metrics) out of reach of the network, does the running sipguard run this
policy."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import stat
from typing import Any

from sipguard.drill.report import Check
from sipguard.io.geoip import GeoDatabaseError, GeoResolver
from sipguard.policy.model import Policy

__all__ = ["control_check", "deployment_checks", "geo_check", "metrics_check", "upstream_check"]


async def deployment_checks(
    policy: Policy, status: dict[str, Any], today: datetime.date
) -> list[Check]:
    return [
        await asyncio.to_thread(geo_check, policy, today),
        upstream_check(policy),
        control_check(policy.control_path),
        metrics_check(policy),
        running_policy_check(policy, status),
    ]


def geo_check(policy: Policy, today: datetime.date) -> Check:
    """Blocking (opens the database): run it in a thread."""
    try:
        resolver = GeoResolver.open(policy.geo, cache_size=1)
    except GeoDatabaseError as exc:
        return Check("geoip-age", "fail", f"geo.database {policy.geo.database}: {exc}")
    try:
        db = resolver.database
        age = db.age_days(today)
        limit = policy.geo.max_age_days
        if age is None:
            return Check("geoip-age", "warn", f"{db.description}: build date unknown")
        what = f"{db.description}: built {db.built}, {age} days old"
        if resolver.is_stale(today):
            return Check(
                "geoip-age",
                "fail",
                f"{what}, older than geo.max_age_days {limit}: geo-blocks use stale data "
                "(update the database, or sipguard for the builtin data)",
            )
        bound = f"geo.max_age_days {limit}" if limit else "no geo.max_age_days"
        return Check("geoip-age", "ok", f"{what} ({bound})")
    finally:
        resolver.close()


def upstream_check(policy: Policy) -> Check:
    host = policy.upstream.host
    address = ipaddress.ip_address(host)
    listed = any(address in net for net in policy.trusted)
    how = (
        "listed in trusted"
        if listed
        else "trusted implicitly (sipguard always trusts its upstream)"
    )
    if not (address.is_loopback or address.is_private):
        return Check(
            "upstream",
            "warn",
            f"the PBX {policy.upstream} is {how}, but it has a public address: make sure it "
            "accepts SIP only from sipguard, or attackers go around it",
        )
    return Check("upstream", "ok", f"the PBX {policy.upstream} is {how}, never banned")


def control_check(path: str) -> Check:
    try:
        info = os.stat(path)
    except OSError as exc:
        return Check("control-socket", "warn", f"{path}: {exc.strerror or exc}")
    if not stat.S_ISSOCK(info.st_mode):
        return Check("control-socket", "fail", f"{path} is not a Unix socket")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Check(
            "control-socket",
            "fail",
            f"{path} has mode {mode:04o}: other users may ban and unban; it must be 0600",
        )
    return Check("control-socket", "ok", f"Unix socket {path}, mode {mode:04o} (no network port)")


def metrics_check(policy: Policy) -> Check:
    metrics = policy.metrics
    if metrics is None:
        return Check("metrics", "ok", "no metrics endpoint")
    address = ipaddress.ip_address(metrics.host)
    if address.is_loopback:
        return Check("metrics", "ok", f"metrics on {metrics}: loopback only")
    return Check(
        "metrics",
        "fail",
        f"metrics on {metrics} are reachable beyond loopback: they tell an attacker what is "
        "blocked; bind 127.0.0.1 and scrape through a tunnel or proxy",
    )


def running_policy_check(policy: Policy, status: dict[str, Any]) -> Check:
    running = str(status.get("policy_sha256") or "")
    if not running or not policy.source_sha256:
        return Check("running-policy", "warn", "cannot tell which policy the sipguard runs")
    if running != policy.source_sha256:
        return Check(
            "running-policy",
            "warn",
            f"the running sipguard uses another version of the policy ({running[:12]} vs "
            f"{policy.source_sha256[:12]} in {policy.source_path}): reload it (SIGHUP), the "
            "expectations are read from the file",
        )
    return Check("running-policy", "ok", f"the running sipguard uses this policy ({running[:12]})")
