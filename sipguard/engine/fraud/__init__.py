"""Toll-fraud detection (DESIGN.md section 3, policy section `fraud`). Pure: no I/O, no clock.

    guard = FraudGuard(policy.fraud)                        # one per engine, kept across reloads
    finding = guard.check_invite(request, account, now)     # an INVITE the engine would forward
    guard.observe(message, now)                             # every forwarded message, both ways
    guard.sweep(now)                                        # about once a second
    guard.swap(new_policy.fraud)                            # a reload: state is kept

Where the engine calls each hook:

* `check_invite(request, account, now, from_pbx=False)`: an INVITE from outside toward the PBX,
  after the firewall (ban, rules, rate limits) let it through and before it is forwarded. Trusted
  sources are checked too. `account` is the digest username of its credentials, else the From
  user. With `from_pbx=True`: an INVITE from the PBX toward the outside (a trunk): the number is
  then read without removing `outside_line_prefix`, which the PBX already took off.
  A finding with `action` `reject`: answer 403 (never forward) and raise an event; `alert`:
  forward and raise an event; None: forward. Retransmissions of a refused INVITE get the same
  finding again (answer them the same way); other retransmissions and re-INVITEs (a To tag) get
  None. `check_invite_all` gives every finding (the engine calls one of the two per INVITE).
* `observe(message, now)`: every message the engine forwards, in both directions (requests and
  responses, from the PBX and from outside). It returns at once for anything but final responses
  to INVITEs, BYE and CANCEL: a 2xx answers a call, a final response >= 300 to the initial INVITE,
  a BYE (either side) or a CANCEL (before the answer) ends it. A 401/407 to an INVITE ends the
  attempt and takes it out of the per-minute/per-hour windows and the spike counts, so the
  challenged first INVITE of an authenticated call does not count twice.
* `sweep(now)`: from the housekeeping tick; ends calls not answered within `ring_timeout` (5 min)
  and answered calls after `max_call` (6 h; a lost BYE), forgets idle accounts and old baselines.
* `swap(spec)`: after a reload, with the new `FraudSpec`; calls in progress, windows and spike
  baselines stay.
* `seed_baseline(account, calls, international)`: optional, at start, from stored rollups, so the
  overall spike baseline does not have to learn again (it reports nothing for its first 3
  intervals otherwise).

Findings (`FraudFinding`): `kind` is `fraud_destination` (`rule` `fraud.destinations.deny_types`
or `fraud.destinations.allow`), `fraud_limit` (`fraud.per_account.concurrent_calls`,
`.calls_per_minute`, `.calls_per_hour`), `fraud_quiet_hours` (`fraud.quiet_hours`) or
`fraud_spike` (`fraud.spikes`); `detail` is short, with the numbers that decided; `destination`
the classified number (None when the call is not to a phone number, e.g. `sip:alice@...`).

Emergency numbers of the home country (112, 911, 999, ...), with or without the outside-line
prefix, are never refused: `check_invite` tracks them as calls in progress (they count in no
window and no spike) and returns None.

What counts: a call is *in progress* from its INVITE until it ends (ringing calls count, so 50
parallel INVITEs are 50 calls). The windows count calls that were forwarded (a refused INVITE is
no call), and a spike counts attempts that were forwarded. Refused INVITEs are not tracked as calls.
"""

from sipguard.engine.fraud.calls import CallTable
from sipguard.engine.fraud.guard import (
    KIND_DESTINATION,
    KIND_LIMIT,
    KIND_QUIET_HOURS,
    KIND_SPIKE,
    FraudFinding,
    FraudGuard,
    decisive,
)
from sipguard.engine.fraud.numbers import (
    Destination,
    classify_user,
    destination,
    dialled_user,
    is_emergency,
)
from sipguard.engine.fraud.spikes import SpikeMeter

__all__ = [
    "KIND_DESTINATION",
    "KIND_LIMIT",
    "KIND_QUIET_HOURS",
    "KIND_SPIKE",
    "CallTable",
    "Destination",
    "FraudFinding",
    "FraudGuard",
    "SpikeMeter",
    "classify_user",
    "decisive",
    "destination",
    "dialled_user",
    "is_emergency",
]
