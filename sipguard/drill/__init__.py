"""sipguard.drill: simulated attacks against a running sipguard, judged against its policy
(DESIGN.md section 7, `sipguard drill`).

Modules: `catalogue` (the attacks), `target` (where the drill may send: loopback unless named),
`expect` (what the policy should do to each, pure), `sipmsg` (the messages, pure), `ua` (the
simulated user agents, asyncio-dgram, bounded), `attacks` (driving them), `observe` (control
socket and store), `checks` (the deployment), `report` (verdicts and output), `run` (`run_drill`).
"""

from sipguard.drill.catalogue import ATTACKS, DEFAULT_ACCOUNT, MAX_PACKETS, AttackSpec
from sipguard.drill.report import AttackResult, Check, DrillReport
from sipguard.drill.run import run_drill
from sipguard.drill.target import DrillError, Target, TargetRefused, parse_target, resolve_target

__all__ = [
    "ATTACKS",
    "DEFAULT_ACCOUNT",
    "MAX_PACKETS",
    "AttackResult",
    "AttackSpec",
    "Check",
    "DrillError",
    "DrillReport",
    "Target",
    "TargetRefused",
    "parse_target",
    "resolve_target",
    "run_drill",
]
