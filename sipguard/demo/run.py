"""`sipguard demo`: a toy PBX, sipguard in front of it, a few phones, and the drill's attackers, all
on loopback in this one process; a running summary; at the end the drill table and the report.

Everything the demo starts lives in this process and one event loop: the toy PBX's socket, sipguard
(`sipguard.app.serve`, stopped through its shutdown trigger), the phones' sockets and the drill's
attackers. It starts no subprocess, so nothing can outlive it; the work directory (policy, store,
alerts, log, report) is removed at the end unless `--keep DIR` names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from sipguard.app import Running, StartupError, serve
from sipguard.demo.live import LiveView, Snapshot, format_counts, take_snapshot
from sipguard.demo.pbx import DEMO_ACCOUNTS, ToyPbx
from sipguard.demo.phones import CallResult, Phone, PhoneError
from sipguard.drill import DrillError, DrillReport, run_drill
from sipguard.drill.catalogue import DEFAULT_ACCOUNT
from sipguard.policy import Policy, PolicyError, load_policy_file
from sipguard.report import build_report, render
from sipguard.store import Store, StoreError

__all__ = ["DemoError", "DemoResult", "demo_policy_text", "main", "render_policy", "run_demo"]

log = logging.getLogger("sipguard.demo")

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
START_TIMEOUT = 15.0  # seconds for sipguard to bind and open its store
REGISTER_TIMEOUT = 10.0
DRILL_TIMEOUT = 120.0  # the drill bounds itself; this only catches a hang
OFFICE_GRACE = 10.0  # seconds the phones may take to finish their call after the drill
REFRESH_TTY, REFRESH_PLAIN = 0.25, 1.0  # seconds between summary updates
PHONES = (("101", "127.0.1.101"), ("102", "127.0.1.102"), ("103", "127.0.1.103"))
#: Who each phone calls, in turn: extensions and a national number (no trunk: the toy PBX answers).
DIALS = {"101": ("102", "0201234567", "103"), "102": ("103", "101", "0301234567"),
         "103": ("101", "102", "0101234567")}  # fmt: skip
CALLS_PER_PHONE = 4
CALL_GAP = 2.0  # seconds between one phone's calls
TALK = 0.8  # seconds a call lasts
_STEP = re.compile(r"\[\s*(\d+/\d+)\]\s+(\S+)")  # "[ 3/12] enumeration ..." in drill progress
QUIET_LEAD = datetime.timedelta(hours=1)  # the quiet-hours window starts this long before now


class DemoError(Exception):
    """The demo could not run (a busy directory, sipguard would not start ...)."""


# ------------------------------------------------------------------------------------ the policy


def demo_policy_text() -> str:
    """The demo policy as shipped (package data: sipguard/demo/policy.yaml)."""
    return resources.files("sipguard.demo").joinpath("policy.yaml").read_text(encoding="utf-8")


def render_policy(template: str, *, upstream: str, now: float) -> str:
    """The shipped policy with the toy PBX as `upstream` and quiet hours (UTC) from an hour before
    `now` to three hours after it, so the drill's night call falls in them whenever it runs."""
    start = datetime.datetime.fromtimestamp(now, datetime.UTC) - QUIET_LEAD
    end = start + datetime.timedelta(hours=4)
    lines = []
    replaced = {"upstream": False, "quiet_hours": False}
    for line in template.splitlines():
        if line.startswith("upstream:"):
            line = f"upstream: {upstream}      # the toy PBX of this run"
            replaced["upstream"] = True
        elif line.lstrip().startswith("quiet_hours:"):
            indent = line[: len(line) - len(line.lstrip())]
            line = (
                f'{indent}quiet_hours: {{from: "{start:%H:%M}", to: "{end:%H:%M}", '
                "timezone: UTC, international: alert}  # around the time of this run"
            )
            replaced["quiet_hours"] = True
        lines.append(line)
    missing = [key for key, done in replaced.items() if not done]
    if missing:
        raise DemoError(f"the demo policy has no {', '.join(missing)} line to fill in")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- the outcome


@dataclass(slots=True)
class DemoResult:
    """What the demo saw, for the final summary (and for tests)."""

    workdir: Path
    started: float
    kept: bool = False
    finished: float = 0.0
    snapshot: Snapshot | None = None
    events: dict[str, int] = field(default_factory=dict)  # recorded in the store, by kind
    bans_stored: int = 0
    drill: DrillReport | None = None
    calls: list[CallResult] = field(default_factory=list)
    registered: int = 0
    report_path: Path | None = None
    pbx_lines: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.drill is not None and self.drill.ok and not self.problems


# ------------------------------------------------------------------------------------- running


async def run_demo(
    *,
    keep: Path | None,
    out: TextIO,
    tty: bool,
    color: bool,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the whole demo; the exit code (0 when the drill passed)."""
    try:
        workdir = _workdir(keep)
    except DemoError as exc:
        out.write(f"sipguard demo: {exc}\n")
        return EXIT_ERROR
    view = LiveView(out, tty, color)
    result = DemoResult(workdir, clock(), kept=keep is not None)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupt)
            handled.append(sig)
    try:
        with _demo_logging(workdir):
            code = await _run(result, view, clock)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        view.note("sipguard demo: interrupted; everything it started is stopped")
        code = EXIT_INTERRUPTED
    except DemoError as exc:
        view.note(f"sipguard demo: {exc}")
        code = EXIT_ERROR
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


async def _run(result: DemoResult, view: LiveView, clock: Callable[[], float]) -> int:
    s = view.style
    workdir = result.workdir
    view.note(s.bold("sipguard demo") + " - a toy PBX (demo only, not a PBX), sipguard in front")
    view.note("of it, three phones and the drill's attackers, all on loopback. Work directory:")
    view.note(f"  {workdir}")
    accounts = {**DEMO_ACCOUNTS, DEFAULT_ACCOUNT: secrets.token_urlsafe(12)}
    pbx = ToyPbx(accounts)
    await pbx.start()
    try:
        policy = _write_policy(workdir, pbx.url, clock())
        stage = ["starting sipguard"]
        async with _guard(policy) as running:
            outside = next(a for a in running.outside if a.transport.value == "udp")
            view.note(
                f"toy PBX on {pbx.url}; sipguard on udp://{outside.host}:{outside.port}, "
                f"forwarding to it"
            )
            alerts_file = workdir / "alerts.jsonl"

            def snap() -> Snapshot:
                return take_snapshot(
                    running.counters,
                    running.engine,
                    elapsed=clock() - result.started,
                    alerts_file=alerts_file,
                    registrations=pbx.stats.registrations,
                    calls=pbx.stats.calls_answered,
                    stage=stage[0],
                )

            drill_done = asyncio.Event()
            target = f"{outside.host}:{outside.port}"

            def progress(line: str) -> None:
                step = _STEP.search(line)
                if step is not None:
                    stage[0] = f"drill {step.group(1)} {step.group(2)}"
                view.note(f"  drill  {line}")

            phones = await _open_phones((outside.host, outside.port))
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_refresh(view, snap, drill_done))
                    try:
                        stage[0] = "phones registering"
                        result.registered = await _register(phones, view)
                        stage[0] = "phones calling; drill starting"
                        office = tasks.create_task(_office(phones, drill_done, result))
                        await _drill(result, policy, target, progress)
                    finally:
                        drill_done.set()
                    stage[0] = "phones hanging up"
                    await asyncio.wait({office}, timeout=OFFICE_GRACE)
                    office.cancel()
            finally:
                for phone in phones:
                    phone.close()
            stage[0] = "stopping sipguard"
            view.show(snap())
            view.finish()
        # sipguard has stopped: its store holds everything it decided
        result.snapshot = snap()
    finally:
        pbx.close()
    result.pbx_lines = (
        f"{pbx.stats.registrations} registrations, {pbx.stats.calls_answered} calls answered, "
        f"{pbx.stats.challenges} challenges, {pbx.stats.auth_failures} failed logins, "
        f"{pbx.stats.not_found} not found"
    )
    result.finished = clock()
    await _read_store(result, policy)
    await _write_report(result, policy)
    _summary(result, view)
    return EXIT_PASSED if result.passed else EXIT_FAILED


@contextlib.asynccontextmanager
async def _guard(policy: Policy) -> AsyncIterator[Running]:
    """sipguard serving `policy` in this loop until the block ends; then stopped in order."""
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()

    def on_ready(running: Running) -> None:
        if not ready.done():
            ready.set_result(running)

    serving = asyncio.create_task(
        serve(policy, shutdown_trigger=stop.wait, on_ready=on_ready, watch_policy=False),
        name="sipguard",
    )
    waiting: set[asyncio.Future[Any]] = {ready, serving}
    try:
        done, _ = await asyncio.wait(
            waiting, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            if serving.done():
                exc = serving.exception()
                if isinstance(exc, StartupError):
                    raise DemoError(f"sipguard did not start: {exc}") from exc
                raise DemoError(f"sipguard stopped at once: {exc!r}")
            raise DemoError(f"sipguard did not start within {START_TIMEOUT:g} s")
        yield ready.result()
    finally:
        stop.set()
        ready.cancel()
        await asyncio.wait({serving})  # never raises what serve raised (StartupError ...)
        if not serving.cancelled() and serving.exception() is not None:
            log.error("sipguard stopped with an error: %r", serving.exception())


async def _drill(
    result: DemoResult, policy: Policy, target: str, progress: Callable[[str], None]
) -> None:
    """The drill's attackers against this sipguard; what goes wrong becomes a problem line."""
    try:
        async with asyncio.timeout(DRILL_TIMEOUT):
            result.drill = await run_drill(policy, target=target, progress=progress, store=True)
    except DrillError as exc:
        result.problems.append(f"the drill could not run: {exc}")
    except TimeoutError:
        result.problems.append(f"the drill did not finish within {DRILL_TIMEOUT:g} s")
    except Exception as exc:  # a broken drill must not stop the demo's cleanup
        log.exception("the drill failed")
        result.problems.append(f"the drill failed: {exc!r} (details in demo.log)")


async def _refresh(view: LiveView, snap: Callable[[], Snapshot], done: asyncio.Event) -> None:
    interval = REFRESH_TTY if view.tty else REFRESH_PLAIN
    while not done.is_set():
        view.show(snap())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), interval)


# ------------------------------------------------------------------------------------ the office


async def _open_phones(proxy: tuple[str, int]) -> list[Phone]:
    phones = []
    try:
        for user, ip in PHONES:
            phone = Phone(user, DEMO_ACCOUNTS[user], ip=ip, proxy=proxy)
            await phone.open()
            phones.append(phone)
    except OSError as exc:
        for phone in phones:
            phone.close()
        raise DemoError(f"cannot open a phone's socket on loopback: {exc}") from exc
    return phones


async def _register(phones: list[Phone], view: LiveView) -> int:
    async def one(phone: Phone) -> bool:
        try:
            status = await phone.register()
        except PhoneError as exc:
            view.note(f"  phone  {exc}")
            return False
        view.note(f"  phone  {phone.user} at {phone.ip} registered: {status}")
        return status == 200

    try:
        async with asyncio.timeout(REGISTER_TIMEOUT):
            results = await asyncio.gather(*(one(p) for p in phones))
    except TimeoutError:
        view.note("  phone  registration timed out")
        return sum(p.registered for p in phones)
    return sum(results)


async def _office(phones: list[Phone], drill_done: asyncio.Event, result: DemoResult) -> None:
    """Each phone calls the numbers of `DIALS` in turn until the drill is over (at most
    `CALLS_PER_PHONE` calls), then registers once more (a refresh)."""

    async def day(phone: Phone, offset: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drill_done.wait(), offset)
        dials = DIALS[phone.user]
        for n in range(CALLS_PER_PHONE):
            try:
                result.calls.append(await phone.call(dials[n % len(dials)], talk=TALK))
            except PhoneError as exc:
                result.calls.append(CallResult(dials[n % len(dials)]))
                log.warning("demo phone: %s", exc)
            if drill_done.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drill_done.wait(), CALL_GAP)
        with contextlib.suppress(PhoneError):
            await phone.register()

    async with asyncio.TaskGroup() as tasks:
        for i, phone in enumerate(phones):
            tasks.create_task(day(phone, 0.3 * i))


# ------------------------------------------------------------------------------------ the end


async def _read_store(result: DemoResult, policy: Policy) -> None:
    """What sipguard recorded during the run (the store is closed by now: open it again)."""
    try:
        async with await Store.open(policy.storage_path) as store:
            events = await store.events(result.started, None, limit=1_000_000)
            bans = await store.bans(result.started)
    except StoreError as exc:
        result.problems.append(f"cannot read the store: {exc}")
        return
    result.events = dict(Counter(e.kind for e in events))
    result.bans_stored = len(bans)


async def _write_report(result: DemoResult, policy: Policy) -> None:
    """The HTML report of the run: in the work directory when it is kept, else in a file of its
    own in the temporary directory (the work directory goes, the report stays to be opened)."""
    try:
        report = await build_report(policy, result.started - 60, result.finished + 60)
        html = render(report, "html")
    except (StoreError, OSError, ValueError) as exc:
        result.problems.append(f"the report could not be built: {exc}")
        return
    if result.kept:
        path = result.workdir / "report.html"
        path.write_text(html, encoding="utf-8")
    else:
        fd, name = tempfile.mkstemp(prefix="sipguard-demo-report-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        path = Path(name)
    result.report_path = path


def _summary(result: DemoResult, view: LiveView) -> None:
    s = view.style
    snap = result.snapshot
    assert snap is not None
    took = result.finished - result.started
    answered = sum(1 for c in result.calls if c.answered and c.ended)
    if result.bans_stored != snap.bans_total:
        result.problems.append(
            f"the store holds {result.bans_stored} bans, sipguard counted {snap.bans_total}"
        )
    alerts = result.workdir / "alerts.jsonl" if result.kept else "alerts.jsonl"
    lines = [
        "",
        s.bold(f"sipguard demo: finished in {took:.1f} s"),
        f"  forwarded:        {snap.to_pbx + snap.to_phones} "
        f"(to the PBX {snap.to_pbx}, to the phones {snap.to_phones})",
        f"  blocked:          {snap.blocked_total}{_counts(snap.blocked)}",
        f"  bans issued:      {snap.bans_total}{_counts(snap.bans_issued)}",
        f"  events recorded:  {sum(result.events.values())}{_counts(result.events)}",
        f"  alerts raised:    {snap.alerts} (in {alerts})",
        f"  toy PBX:          {result.pbx_lines}",
        f"  phones:           {result.registered} of {len(PHONES)} registered, "
        f"{answered} of {len(result.calls)} calls answered and hung up",
        "",
    ]
    for line in lines:
        view.note(line)
    if result.drill is not None:
        view.note(result.drill.table())
    for problem in result.problems:
        view.note(s.red(f"problem: {problem}"))
    if result.report_path is not None:
        view.note(f"HTML report: {result.report_path}")
    if result.kept:
        view.note(
            f"kept in {result.workdir}: policy.yaml, sipguard.db, alerts.jsonl, demo.log; "
            f"try `sipguard report -c {result.workdir / 'policy.yaml'}`"
        )
    else:
        view.note("the demo's other files are removed; `sipguard demo --keep DIR` keeps them")
    verdict = s.green("passed") if result.passed else s.red("FAILED")
    view.note(f"sipguard demo: {verdict}")


def _counts(counts: dict[str, int]) -> str:
    text = format_counts(counts)
    return f" ({text})" if text else ""


# ------------------------------------------------------------------------------------ plumbing


def _workdir(keep: Path | None) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="sipguard-demo-"))
    keep = keep.resolve()
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise DemoError(f"--keep {keep}: not an empty directory (the demo starts from scratch)")
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def _write_policy(workdir: Path, upstream: str, now: float) -> Policy:
    path = workdir / "policy.yaml"
    path.write_text(render_policy(demo_policy_text(), upstream=upstream, now=now), encoding="utf-8")
    try:
        return load_policy_file(path)
    except PolicyError as exc:
        raise DemoError(f"the demo policy does not load: {exc}") from exc


@contextlib.contextmanager
def _demo_logging(workdir: Path) -> Iterator[None]:
    """sipguard's log (and the toy PBX's "demo only" lines) go to demo.log in the work
    directory, not between the summary lines."""
    logger = logging.getLogger("sipguard")
    handler = logging.FileHandler(workdir / "demo.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(keep: str | None, *, no_color: bool, out: TextIO = sys.stdout) -> int:
    """The `sipguard demo` verb."""
    from sipguard.io import loop  # noqa: PLC0415  (uvloop through the one factory)

    tty = out.isatty()
    color = tty and not no_color and "NO_COLOR" not in os.environ
    return loop.run(
        run_demo(keep=Path(keep) if keep is not None else None, out=out, tty=tty, color=color)
    )
