"""The `sipguard` command line (the contract of shared/DESIGN.md section 9)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sipguard import __version__
from sipguard.policy import Policy, PolicyError, load_policy_file

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
        description="Inline SIP firewall and intrusion-prevention proxy in front of a PBX or SIP trunk.",
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
    run.set_defaults(func=_run)
    check = verb(
        "check", "validate a policy without running; exit 0 if valid, 2 with file:line:col errors"
    )
    check.set_defaults(func=_check)
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


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    policy = _load(args.policy)
    if policy is None:
        return EXIT_INVALID
    from sipguard.app import StartupError, serve  # noqa: PLC0415  (keeps `check` light)
    from sipguard.io import loop, signals  # noqa: PLC0415

    async def daemon() -> None:
        stop = asyncio.Event()
        remove = signals.install(
            stop,
            lambda: logging.getLogger("sipguard").info(
                "SIGHUP: policy reload arrives with the firewall (issue 4); listen addresses need a restart"
            ),
        )
        try:
            await serve(policy, shutdown_trigger=stop.wait)
        finally:
            remove()

    try:
        loop.run(daemon())
    except StartupError as exc:
        logging.getLogger("sipguard").error("%s", exc)
        return EXIT_FAILURE
    return EXIT_OK
