"""The local control channel between the CLI and a running sipguard: JSON lines over a Unix socket.

Local only, by construction: a Unix socket with mode 0600 in the state folder, never a network port
(the fail2ban client/server split). One request line, one answer line, then the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from sipguard import __version__
from sipguard.engine.bans import ActiveBan
from sipguard.engine.effects import BanIssued
from sipguard.engine.engine import Engine
from sipguard.io.counters import Counters

MAX_REQUEST = 64 * 1024  # bytes: a request is one small JSON object
CLIENT_TIMEOUT = 5.0


class ReloadResult(Protocol):
    """What a reload reports back (services.reload.ReloadOutcome has these fields)."""

    @property
    def ok(self) -> bool: ...
    @property
    def sha256(self) -> str: ...
    @property
    def summary(self) -> str: ...


class ControlUnavailable(Exception):
    """No sipguard is listening on the control socket (it is stopped, or another user runs it)."""


def ban_to_json(ban: ActiveBan | BanIssued) -> dict[str, Any]:
    return {
        "ip": ban.ip,
        "issued_at": ban.issued_at,
        "until": ban.until,
        "reason": ban.reason,
        "rule": ban.rule,
        "evidence": ban.evidence,
        "offences": ban.offences,
        "actor": ban.actor,
    }


class ControlServer:
    def __init__(
        self,
        path: str,
        engine: Engine,
        clock: Callable[[], float],
        counters: Counters | None = None,
    ) -> None:
        self._path = path
        self._engine = engine
        self._clock = clock
        self._counters = counters
        # set by app.py once the policy reloader exists: reload now on behalf of `actor`
        self.reload: Callable[[str], Awaitable[ReloadResult]] | None = None
        self._started = clock()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        _clear_the_way(self._path)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self._path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old_umask)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                Path(self._path).unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
            try:
                request = json.loads(line)
                peer = _peer_user(writer)
                if request.get("op") == "reload":
                    answer = await self._reload_request(request, peer)
                else:
                    answer = self.handle(request, peer=peer)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _reload_request(self, request: dict[str, Any], peer: str | None) -> dict[str, Any]:
        """`sipguard reload`: reload the policy now, on behalf of the user who asked (the audit
        trail records them, where a SIGHUP can only say "SIGHUP"), and answer with the outcome."""
        if self.reload is None:
            return {"ok": False, "error": "this sipguard cannot reload its policy"}
        actor = _actor(str(request.get("actor", "cli"))[:64], peer)
        outcome = await self.reload(actor)
        return {
            "ok": outcome.ok,
            "actor": actor,
            "sha256": outcome.sha256,
            "summary": outcome.summary,
        }

    def handle(self, request: dict[str, Any], peer: str | None = None) -> dict[str, Any]:
        """One request. `peer`: the user the kernel says sent it (the socket's peer credentials);
        the audit trail records it next to the actor the client named when they differ."""
        op = request["op"]
        now = self._clock()
        actor = _actor(str(request.get("actor", "cli"))[:64], peer)
        if op == "ban":
            seconds = request.get("seconds")
            result = self._engine.ban(
                str(request["ip"]),
                now,
                None if seconds is None else float(seconds),
                str(request.get("reason", ""))[:200],
                actor,
            )
            if isinstance(result, str):
                return {"ok": False, "error": result}
            return {"ok": True, "ban": ban_to_json(result)}
        if op == "unban":
            reason = str(request.get("reason", ""))[:200]
            lifted = self._engine.unban(str(request["ip"]), now, actor, reason)
            return {"ok": True, "lifted": lifted is not None}
        if op == "bans":
            return {"ok": True, "bans": [ban_to_json(b) for b in self._engine.active_bans(now)]}
        if op == "status":
            return {"ok": True, **self._status(now)}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _status(self, now: float) -> dict[str, Any]:
        """Read-only: the policy in force, the engine's counts and the message counters (what
        `sipguard drill` compares before and after an attack). Keys are bounded by the code and
        the policy, never by message bytes."""
        policy = self._engine.policy.policy
        stats = self._engine.stats()
        out: dict[str, Any] = {
            "now": now,
            "started_at": self._started,
            "version": __version__,
            "policy_sha256": policy.source_sha256,
            "policy_path": policy.source_path,
            "bans_active": stats.bans_active,
            "bans_issued": stats.bans_issued,
            "findings": stats.findings,
            "auth_failures": stats.auth_failures,
        }
        counters = self._counters
        if counters is not None:
            out["messages"] = [[*key, n] for key, n in sorted(counters.messages.items())]
            out["rules"] = [[*key, n] for key, n in sorted(counters.rules.items())]
        return out


def request(path: str, payload: dict[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Ask the running sipguard (blocking; for the CLI). ControlUnavailable when nobody listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlUnavailable(path) from exc
        sock.sendall(json.dumps(payload).encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    return answer


def _actor(claimed: str, peer: str | None) -> str:
    """Who did it, for the audit trail: what the client said ("cli:alice", the user behind sudo
    included), with the account the kernel vouches for when that is another ("cli:alice (as
    sipguard)")."""
    if peer is None or claimed == peer or claimed.endswith(":" + peer):
        return claimed
    return f"{claimed} (as {peer})"


def _peer_user(writer: asyncio.StreamWriter) -> str | None:
    """The user name (or `uid N`) of the process at the other end of a Unix socket; None where
    the platform cannot say."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _clear_the_way(path: str) -> None:
    """Make the folder; remove a socket file a killed sipguard left; refuse if one still listens."""
    where = Path(path)
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if where.exists():
        if _someone_listens(path):
            raise OSError(f"another sipguard already listens on {path}")
        where.unlink()


def _someone_listens(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
        return True
