"""Which target of a route a request tries first, and which next (pure: no I/O, no Django).

A route's targets sit in priority groups (0 first, then each fallback group). Within a group:

- with a session (Claude Code's ``x-claude-code-session-id``, else ``metadata.user_id``'s),
  weighted rendezvous hashing: every target scores ``-weight / ln(h)``, ``h`` a hash of the
  session and the target in (0, 1), and the highest wins. Every turn of a session lands on the
  same replica, the one holding its prefix cache, and when a replica leaves only the sessions
  it held move (each to its second-highest score);
- without one, the fewest in-flight requests per unit of weight, ties broken at random in
  proportion to the weights (so at low load traffic still splits by weight).

Targets that are ejected (``available`` says no) come last, as a last resort: a request whose
every target is ejected still tries one rather than fail without asking. The caller stops at the
route's attempt limit.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from typing import Literal

from gateway.snapshot import Target

Reason = Literal["only target", "affinity", "least in-flight", "fallback", "last resort"]

_HASH_SCALE = float(1 << 64)
_RNG = random.Random()


def rendezvous_score(session: bytes, target: Target) -> float:
    """Weighted rendezvous score of ``target`` for ``session`` (higher wins)."""
    digest = hashlib.blake2b(session + b"\0" + target.seed, digest_size=8).digest()
    h = (int.from_bytes(digest, "big") + 0.5) / _HASH_SCALE  # in (0, 1), never 0 or 1
    return -target.weight / math.log(h)


def _least_loaded(group: list[Target], inflight: Callable[[str], int], rng: random.Random) -> list[Target]:
    load = {id(t): inflight(t.name) / t.weight for t in group}
    lowest = min(load.values())
    tied = [t for t in group if load[id(t)] == lowest]
    first = tied[0] if len(tied) == 1 else rng.choices(tied, weights=[t.weight for t in tied])[0]
    rest = sorted((t for t in group if t is not first), key=lambda t: load[id(t)])
    return [first, *rest]


def targets_order(targets: Sequence[Target], *, session: str, available: Callable[[str], bool],
                  inflight: Callable[[str], int], rng: random.Random | None = None) -> list[tuple[Target, Reason]]:
    """Every target of a route in the order a request tries them, each with why it is there."""
    if len(targets) == 1:
        return [(targets[0], "only target")]
    rng = rng or _RNG
    key = session.encode() if session else b""
    ordered: list[tuple[Target, Reason]] = []
    ejected: list[Target] = []
    groups: dict[int, list[Target]] = {}
    for target in targets:
        if available(target.name):
            groups.setdefault(target.group, []).append(target)
        else:
            ejected.append(target)
    first_group = min(t.group for t in targets)
    for group_id in sorted(groups):
        group = groups[group_id]
        if key:
            group = sorted(group, key=lambda t: rendezvous_score(key, t), reverse=True)
            reason: Reason = "affinity"
        else:
            group = _least_loaded(group, inflight, rng) if len(group) > 1 else group
            reason = "least in-flight"
        ordered.extend((t, reason if group_id == first_group else "fallback") for t in group)
    ordered.extend((t, "last resort") for t in ejected)
    return ordered
