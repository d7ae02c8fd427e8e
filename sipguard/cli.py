"""The `sipguard` command line (the contract of shared/DESIGN.md section 9)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sipguard import __version__, admin
from sipguard.policy import Policy, PolicyError, load_policy_file, parse_duration
from sipguard.store import StoreError

DEFAULT_POLICY = "policies/default.yaml"
EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_INVALID
    verb: int = args.func(args)
    return verb


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipguard",
        description="Inline SIP firewall and intrusion-prevention proxy for a PBX or SIP trunk.",
    )
    parser.add_argument("--version", action="version", version=f"sipguard {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--policy",
            default=os.environ.get("SIPGUARD_POLICY", DEFAULT_POLICY),
            help=f"policy YAML (default: $SIPGUARD_POLICY, else {DEFAULT_POLICY})",
        )
        return sub

    run = verb("run", "run the proxy in the foreground; SIGTERM/SIGINT stop it gracefully")
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log detail",
    )
    run.add_argument(
        "--log-format",
        default=os.environ.get("SIPGUARD_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="readable lines (default) or one JSON object per line for a log shipper "
        "(default: $SIPGUARD_LOG_FORMAT, else text); on stderr either way",
    )
    run.set_defaults(func=_run)
    check = verb(
        "check", "validate a policy without running; exit 0 if valid, 2 with file:line:col errors"
    )
    check.set_defaults(func=_check)
    demo = verbs.add_parser(
        "demo",
        help="try sipguard without a PBX: a toy PBX, sipguard in front, phones and attackers",
        description="Self-contained: a toy PBX (demo only), sipguard in front of it with a demo "
        "policy, a few phones making calls and the drill's attackers, all on loopback; a live "
        "summary, then the drill table and an HTML report. Exit 0 when the drill passed.",
    )
    demo.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the demo's files (policy, store, alerts, log, HTML report) in DIR, a new or "
        "empty directory (default: a temporary one, removed at the end)",
    )
    demo.add_argument(
        "--no-color", action="store_true", help="no colours (also when $NO_COLOR is set)"
    )
    demo.set_defaults(func=_demo)

    reload = verb(
        "reload",
        "reload the running sipguard's policy now and say what changed (recorded with your "
        "user name); a broken policy is reported with file:line:col and the running one stays "
        "(exit 2; exit 1 when the running sipguard refuses it, e.g. a missing GeoIP file)",
    )
    reload.add_argument("--json", action="store_true", help="print JSON")
    reload.set_defaults(func=_reload)
    status = verb(
        "status",
        "is sipguard running, since when, with which policy, and what it did since (exit 1 when "
        "it is not running)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
    bans = verb("bans", "list active bans (of the running sipguard, else from its store)")
    bans.add_argument("--json", action="store_true", help="print JSON")
    bans.set_defaults(func=_bans)
    ban = verb(
        "ban", "ban an address; a running sipguard applies it at once, a stopped one at start"
    )
    ban.add_argument("ip", help="IPv4 or IPv6 address (IPv6: its /64, see limits.ipv6_prefix)")
    ban.add_argument(
        "--for", dest="duration", help="how long, e.g. 30m, 1h, 7d (default: bans.default)"
    )
    ban.add_argument("--reason", default="", help="why, for the record")
    ban.set_defaults(func=_ban)
    unban = verb("unban", "lift the ban of an address")
    unban.add_argument("ip")
    unban.add_argument("--reason", default="", help="why, for the record")
    unban.set_defaults(func=_unban)
    events = verb("events", "list recorded events")
    events.add_argument("--since", default="1h", help="how far back, e.g. 15m, 1h, 7d (default 1h)")
    events.add_argument("--json", action="store_true", help="print JSON")
    events.set_defaults(func=_events)
    geo = verb("geo", "the country of addresses, where the answer came from, and the data's age")
    geo.add_argument("ips", nargs="+", metavar="IP")
    geo.add_argument("--json", action="store_true", help="print JSON")
    geo.set_defaults(func=_geo)
    report = verb(
        "report",
        "summarise a period of the store: traffic, blocks by reason and country, top sources "
        "and accounts, incidents, bans, policy reloads, GeoIP age, drills",
    )
    report.add_argument("--since", help="how far back from now, e.g. 24h, 7d, 30d (default 7d)")
    report.add_argument(
        "--from",
        dest="start",
        metavar="DATE",
        help="start instead of --since, ISO 8601: 2026-11-01 or 2026-11-01T08:00 (UTC unless "
        "an offset is given)",
    )
    report.add_argument(
        "--to",
        dest="end",
        metavar="DATE",
        help="end, with --from (a date alone: the end of that day; default: now)",
    )
    report.add_argument(
        "--format",
        choices=["md", "json", "html"],
        default="md",
        help="Markdown (default), JSON, or one self-contained HTML file with charts",
    )
    report.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    report.set_defaults(func=_report)
    drill = verb(
        "drill",
        "attack the running sipguard on purpose, from loopback sources, and check that each "
        "attack is stopped and alerted; exit 0 all stopped, 1 one got through, 2 cannot run",
    )
    drill.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="where to send the attacks (default: the policy's first udp listen address); "
        "outside loopback only with --allow-target naming the same target",
    )
    drill.add_argument(
        "--allow-target",
        metavar="HOST:PORT",
        help="allow this non-loopback target (one of this host's own addresses)",
    )
    drill.add_argument(
        "--account",
        metavar="NAME",
        help="the account the brute force guesses passwords for: a test account of the PBX "
        "(default: sipguard-drill, made up, so no real phone is ever locked out)",
    )
    drill.add_argument("--report", metavar="FILE", help="also write the report to FILE")
    drill.add_argument(
        "--format",
        choices=["md", "json"],
        help="format of --report (default: by its extension, else md); without --report, "
        "json prints JSON instead of the table",
    )
    drill.add_argument(
        "--no-store", action="store_true", help="do not record the run in the policy's store"
    )
    drill.set_defaults(func=_drill)
    return parser


def _load(path: str) -> Policy | None:
    try:
        return load_policy_file(Path(path))
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None
    except OSError as exc:
        print(f"{path}: cannot read policy: {exc.strerror or exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    print(f"{args.policy}: ok")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from sipguard.demo.run import main as demo  # noqa: PLC0415  (keeps the other verbs light)

    return demo(args.keep, no_color=args.no_color)


def _admin(args: argparse.Namespace, work: Callable[[Policy], admin.Answer]) -> int:
    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    try:
        answer = work(policy)
    except StoreError as exc:
        print(f"sipguard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if getattr(args, "json", False):
        print(admin.as_json(answer))
    else:
        print(answer.text, file=sys.stdout if answer.ok else sys.stderr)
    return EXIT_OK if answer.ok else EXIT_FAILURE


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SystemExit(f"sipguard: {exc}") from None


def _reload(args: argparse.Namespace) -> int:
    if _load(args.policy) is None:  # its file:line:col errors are printed
        print("sipguard reload: nothing sent, the running policy stays", file=sys.stderr)
        return EXIT_INVALID
    return _admin(args, admin.reload)


def _status(args: argparse.Namespace) -> int:
    return _admin(args, admin.status)


def _bans(args: argparse.Namespace) -> int:
    return _admin(args, admin.list_bans)


def _ban(args: argparse.Namespace) -> int:
    seconds = _duration(args.duration)
    return _admin(args, lambda p: admin.ban(p, args.ip, seconds, args.reason))


def _unban(args: argparse.Namespace) -> int:
    return _admin(args, lambda p: admin.unban(p, args.ip, args.reason))


def _events(args: argparse.Namespace) -> int:
    since = _duration(args.since) or 3600.0
    return _admin(args, lambda p: admin.events(p, since))


def _geo(args: argparse.Namespace) -> int:
    return _admin(args, lambda p: admin.geo(p, args.ips))


def _report(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    from sipguard.report import PeriodError, build_report, parse_period, render  # noqa: PLC0415

    try:
        since, until = parse_period(args.since, args.start, args.end, time.time())
    except PeriodError as exc:
        print(f"sipguard report: {exc}", file=sys.stderr)
        return EXIT_INVALID
    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    try:
        report = asyncio.run(build_report(policy, since, until))
    except StoreError as exc:
        print(f"sipguard report: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        why = exc.strerror or exc
        print(f"sipguard report: cannot write {args.output}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _ready(request_reload: Callable[[str], None], reload_box: list[Callable[[str], None]]) -> None:
    """sipguard is up: SIGHUP may reload from now on, and what start-up built for good (policy,
    GeoIP and phone-number data, sockets) leaves the garbage collector's generations, so its
    collections walk only what messages allocate (bench/callflow.py: about 5 % per message)."""
    reload_box.append(request_reload)
    gc.collect()
    gc.freeze()


def _run(args: argparse.Namespace) -> int:
    from sipguard.services import logs  # noqa: PLC0415  (keeps `check` light)

    logs.configure(args.log_level, logs.LogFormat(args.log_format))
    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    from sipguard.app import StartupError, serve  # noqa: PLC0415  (keeps `check` light)
    from sipguard.io import loop, signals  # noqa: PLC0415

    async def daemon() -> None:
        stop = asyncio.Event()
        reload_box: list[Callable[[str], None]] = []  # filled once sipguard is up
        remove = signals.install(stop, lambda: reload_box[0]("SIGHUP") if reload_box else None)
        try:
            await serve(
                policy,
                shutdown_trigger=stop.wait,
                on_ready=lambda running: _ready(running.request_reload, reload_box),
            )
        finally:
            remove()

    try:
        loop.run(daemon())
    except StartupError as exc:
        logging.getLogger("sipguard").error("%s", exc)
        return EXIT_FAILURE
    return EXIT_OK


def _drill(args: argparse.Namespace) -> int:
    from sipguard.drill import DEFAULT_ACCOUNT, DrillError, run_drill  # noqa: PLC0415

    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    live = sys.stdout.isatty() and sys.stderr.isatty()

    def progress(line: str) -> None:
        if live:  # one line that updates itself; the table follows
            print(f"\r\x1b[2K{line[:150]}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    try:
        report = asyncio.run(
            run_drill(
                policy,
                target=args.target,
                progress=progress,
                store=not args.no_store,
                allow_target=args.allow_target,
                account=args.account or DEFAULT_ACCOUNT,
            )
        )
    except DrillError as exc:
        if live:
            print(file=sys.stderr)
        print(f"sipguard drill: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if live:
        print("\r\x1b[2K", end="", file=sys.stderr, flush=True)
    if args.report is None and args.format == "json":
        print(report.to_json())
    else:
        print(report.table())
    if args.report is not None:
        kind = args.format or ("json" if args.report.endswith(".json") else "md")
        text = report.to_json() + "\n" if kind == "json" else report.to_markdown()
        try:
            Path(args.report).write_text(text, encoding="utf-8")
        except OSError as exc:
            why = exc.strerror or exc
            print(f"sipguard drill: cannot write {args.report}: {why}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK if report.ok else EXIT_FAILURE
