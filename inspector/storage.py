"""How an exchange's bodies and logs are stored and read back. Readers call ``exchanges_load``
on the exchanges they show before reading their body columns (``client_request``,
``upstream_request``, ``upstream_response``, ``client_response``); a queryset of whole rows does
it as it is evaluated (``inspector.models.ExchangeQuerySet``).

Every turn of a session re-sends the whole history, and every session the same system prompt and
tools, so an exchange is stored as pieces (``Piece``) shared by every exchange that holds them
and a skeleton of its own: the four body columns with each piece cut out, and where it goes.
What becomes a piece: in a request body each element of ``messages``, ``input`` and a ``system``
list, the ``tools`` list whole, and a long ``system``/``instructions`` string; in a response the body, the
``message`` and each stream log (``chunks``, ``events``). A piece is the JSON bytes of its value
(``json_bytes``: orjson, the stdlib for integers beyond 64 bits), keyed by their blake2b-128, so
the same value is the same piece wherever it comes from; values and key order come back exactly
(the bytes never go through jsonb).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from translation.jsonbytes import json_bytes, json_loads_exact

if TYPE_CHECKING:  # the recorder imports this module before Django's apps are ready
    from inspector.models import Exchange

# Columns that hold how the bodies are stored, not what was recorded: never exported.
INTERNAL_COLUMNS: frozenset[str] = frozenset({"bodies", "stored_bytes"})
BODY_COLUMNS = ("client_request", "upstream_request", "upstream_response", "client_response")
_REQUEST_COLUMNS = ("client_request", "upstream_request")
_REQUEST_ITEMS = ("messages", "input", "system")
_REQUEST_TEXTS = ("system", "instructions")
_RESPONSE_KEYS = ("body", "message", "chunks", "events")
# Smaller values stay in the skeleton: a reference (its hash) would cost about as much.
PIECE_MIN_BYTES = 128
# Hashes per IN (...) list: well under SQLite's limit on bound parameters.
_IN_BATCH = 500
_FORMAT = 1


@dataclass
class Split:
    """One exchange's bodies as stored: the compressed skeleton and the pieces it references
    (hash → JSON bytes; compressed only when the store does not have them yet)."""

    skeleton: bytes
    pieces: dict[str, bytes] = field(default_factory=dict)


def piece_hash(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def piece_compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def _piece(value: Any, pieces: dict[str, bytes], *, always: bool) -> str | None:
    """The hash of ``value`` as a piece (added to ``pieces``), or None to keep it in the skeleton."""
    if value is None:
        return None
    raw = json_bytes(value)
    if not always and len(raw) < PIECE_MIN_BYTES:
        return None
    digest = piece_hash(raw)
    pieces[digest] = raw
    return digest


def _cut(part: dict[str, Any], key: str, path: list[Any], refs: list[list[Any]], pieces: dict[str, bytes], *,
         always: bool) -> None:
    """``part[key]`` as one piece: None in the skeleton, ``[path, hash]`` in ``refs``."""
    digest = _piece(part[key], pieces, always=always)
    if digest is not None:
        part[key] = None
        refs.append([[*path, key], digest])


def _cut_items(body: dict[str, Any], key: str, path: list[Any], refs: list[list[Any]],
               pieces: dict[str, bytes]) -> None:
    """Each element of the list ``body[key]`` as a piece: ``[path, [hash or None, …]]`` in
    ``refs`` (None: the element is small and stays in the skeleton's list)."""
    items = body[key]
    hashes = [_piece(item, pieces, always=False) for item in items]
    if any(hashes):
        body[key] = [None if h else item for h, item in zip(hashes, items, strict=True)]
        refs.append([[*path, key], hashes])


def _cut_body(body: dict[str, Any], path: list[Any], refs: list[list[Any]], pieces: dict[str, bytes]) -> dict[str, Any]:
    out = dict(body)
    for key in _REQUEST_ITEMS:  # the history: every turn re-sends it and adds to its end
        if isinstance(out.get(key), list):
            _cut_items(out, key, path, refs, pieces)
    if isinstance(out.get("tools"), list):  # the same from turn to turn, session to session
        _cut(out, "tools", path, refs, pieces, always=False)
    for key in _REQUEST_TEXTS:
        if isinstance(out.get(key), str):
            _cut(out, key, path, refs, pieces, always=False)
    return out


def bodies_split(columns: dict[str, Any]) -> Split:
    """The body columns of one row (as ``ExchangeRecord.as_model_kwargs`` gives them: capped
    and redacted) as a skeleton and pieces."""
    refs: list[list[Any]] = []
    pieces: dict[str, bytes] = {}
    skeleton: dict[str, Any] = {}
    for column in BODY_COLUMNS:
        part = columns.get(column) or {}
        if not isinstance(part, dict):
            skeleton[column] = part
            continue
        part = dict(part)
        if column in _REQUEST_COLUMNS:
            if isinstance(part.get("body"), dict):
                part["body"] = _cut_body(part["body"], [column, "body"], refs, pieces)
        else:
            for key in _RESPONSE_KEYS:
                if key in part:
                    _cut(part, key, [column], refs, pieces, always=key != "body")
        skeleton[column] = part
    raw = json_bytes({"format": _FORMAT, "columns": skeleton, "refs": refs})
    return Split(skeleton=piece_compress(raw), pieces=pieces)


def _ref_hashes(ref: list[Any]) -> list[str]:
    target = ref[1]
    return [target] if isinstance(target, str) else [h for h in target if h]


def skeleton_read(blob: bytes | memoryview) -> dict[str, Any]:
    """A row's ``bodies``: ``{"columns": …, "refs": [[path, hash or [hash or None, …]], …]}``."""
    skeleton: dict[str, Any] = json_loads_exact(zlib.decompress(bytes(blob)))
    return skeleton


def skeleton_hashes(skeleton: dict[str, Any]) -> set[str]:
    """Every piece a skeleton holds."""
    return {h for ref in skeleton["refs"] for h in _ref_hashes(ref)}


def _put(columns: dict[str, Any], ref: list[Any], value_of: Any) -> None:
    *path, last = ref[0]
    node = columns
    for step in path:
        node = node[step]
    target = ref[1]
    if isinstance(target, str):
        node[last] = value_of(target)
    else:
        items = node[last]
        node[last] = [value_of(h) if h else item for h, item in zip(target, items, strict=True)]


def _missing(digest: str) -> dict[str, Any]:
    # Retention never removes a piece a kept exchange uses; if one is gone anyway (a database
    # restored in part), the page shows where it was rather than failing.
    return {"_missing_piece": digest}


def exchanges_load(exchanges: Iterable[Exchange]) -> None:
    """Fill in the body columns of ``exchanges`` (in place), whole and exact: one query for the
    skeletons of those read without them, one per 500 pieces for all the pieces they use."""
    from inspector.models import Exchange, Piece

    todo = [e for e in exchanges if not getattr(e, "_bodies_loaded", False)]
    deferred = [e for e in todo if "bodies" in e.get_deferred_fields()]
    if deferred:
        blobs = dict(Exchange.objects.filter(pk__in=[e.pk for e in deferred]).values_list("pk", "bodies"))
        for e in deferred:
            e.bodies = blobs.get(e.pk)
    skeletons: list[tuple[Exchange, dict[str, Any]]] = []
    wanted: set[str] = set()
    for e in todo:
        e._bodies_loaded = True  # type: ignore[attr-defined]
        if not e.bodies:  # written before pieces: the columns hold everything
            continue
        skeleton = skeleton_read(e.bodies)
        skeletons.append((e, skeleton))
        wanted |= skeleton_hashes(skeleton)
    found: dict[str, bytes | memoryview] = {}
    ordered = sorted(wanted)
    for start in range(0, len(ordered), _IN_BATCH):
        found.update(Piece.objects.filter(hash__in=ordered[start:start + _IN_BATCH]).values_list("hash", "data"))
    found = {digest: bytes(data) for digest, data in found.items()}
    for e, skeleton in skeletons:
        for column, value in skeleton_rebuild(skeleton, found).items():
            setattr(e, column, value)


def skeleton_rebuild(skeleton: dict[str, Any], pieces: dict[str, bytes | memoryview]) -> dict[str, Any]:
    """The four body columns from a skeleton (``skeleton_read``) and the stored ``data`` of its
    pieces by hash. Plain Python, no Django: a script reading the tables itself can use it."""
    def value_of(digest: str) -> Any:
        data = pieces.get(digest)
        return json_loads_exact(zlib.decompress(data)) if data is not None else _missing(digest)

    columns = skeleton["columns"]
    for ref in skeleton["refs"]:
        _put(columns, ref, value_of)
    return {column: columns.get(column) or {} for column in BODY_COLUMNS}


# -- writing (the recorder's writer thread) -------------------------------------------------

# Retention deletes a piece only when it was last used this long before the oldest exchange it
# keeps (and before now): room for a writer that skipped bumping a piece it bumped recently
# (``PieceCache``), and for a stream that started long before its exchange is written.
PIECE_SLACK = timedelta(hours=1)
# The writer's memory of pieces (``PieceCache``): at most this many, about 150 bytes each. It only
# saves bumps, so forgetting the oldest costs at most one UPDATE of a piece used again.
_CACHE_MAX = 100_000


@dataclass
class Stored:
    """What ``pieces_store`` did, for ``PieceCache.remember``."""

    bumped: list[str] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)


class PieceCache:
    """The writer's memory of the pieces it stored or bumped: hash → the ``last_used`` it gave
    them. A piece used again within half of ``PIECE_SLACK`` of that is not bumped (the batch's one
    look at which pieces exist is all it costs)."""

    def __init__(self) -> None:
        self._used: dict[str, datetime] = {}

    def stale(self, pieces: Iterable[str], used_at: datetime) -> list[str]:
        fresh_after = used_at - PIECE_SLACK / 2
        return [h for h in pieces if (seen := self._used.get(h)) is None or seen < fresh_after]

    def remember(self, stored: Stored, used_at: datetime) -> None:
        """After the transaction that bumped or inserted the pieces committed."""
        if len(self._used) > _CACHE_MAX:
            self._trim(used_at)
        for h in stored.bumped:
            seen = self._used.get(h)
            if seen is None or seen < used_at:
                self._used[h] = used_at
        for h in stored.inserted:  # inserted again after a purge: as old as this batch, whatever came before
            self._used[h] = used_at

    def _trim(self, used_at: datetime) -> None:
        """Forget what no bump would be skipped for any more, then, if that is not enough (more
        than ``_CACHE_MAX`` pieces within the slack: a busy writer), the least recently used
        down to half the bound, so the cache stays bounded and is rebuilt seldom."""
        cutoff = used_at - PIECE_SLACK / 2
        used = {h: t for h, t in self._used.items() if t >= cutoff}
        if len(used) > _CACHE_MAX // 2:
            newest = sorted(used.items(), key=lambda item: item[1])[-(_CACHE_MAX // 2):]
            used = dict(newest)
        self._used = used

    def __len__(self) -> int:
        return len(self._used)

    def forget(self) -> None:
        self._used.clear()


def row_split(row: dict[str, Any]) -> dict[str, bytes]:
    """Turn an Exchange row's body columns into ``bodies`` (in place) and return its pieces."""
    split = bodies_split(row)
    for column in BODY_COLUMNS:
        row[column] = {}
    row["bodies"] = split.skeleton
    row["stored_bytes"] = len(split.skeleton) + _ROW_BYTES + sum(
        len(row.get(name) or "") for name in ("search_text", "error_message", "validation_error")) + len(
        json_bytes([row.get(name) for name in ("notes", "timings", "usage", "upstream_usage", "attempts")]))
    return split.pieces


# What a row costs besides its skeleton and text columns (its other columns, indexes): an estimate.
_ROW_BYTES = 400


def pieces_present(pieces: Iterable[str]) -> dict[str, datetime]:
    """Which of ``pieces`` exist, with their ``last_used``. Read before the transaction that
    stores a batch: on SQLite a transaction that reads first cannot wait for another writer's
    lock (it fails at once); one that starts by writing waits for the busy timeout."""
    from inspector.models import Piece

    hashes = list(pieces)
    present: dict[str, datetime] = {}
    for start in range(0, len(hashes), _IN_BATCH):
        present.update(Piece.objects.filter(hash__in=hashes[start:start + _IN_BATCH]).values_list("hash", "last_used"))
    return present


def pieces_store(pieces: dict[str, bytes], *, present: dict[str, datetime], used_at: datetime,
                 cache: PieceCache) -> Stored:
    """Make every piece exist with ``last_used`` at least ``used_at``, given which exist
    (``pieces_present``: the cache is no proof, the table may have been emptied since); inside
    the caller's transaction. Returns what to give ``cache.remember`` once it committed.

    Those the cache does not know as recently used are moved forward (never backwards); one that
    retention deleted since the look (another instance's pass) is inserted again with the
    missing ones (a conflict is another writer that inserted the same piece meanwhile: the same
    bytes)."""
    from inspector.models import Piece

    if not pieces:
        return Stored()
    stale = set(cache.stale(present, used_at))
    older = sorted(h for h in stale if present[h] < used_at)
    gone: set[str] = set()
    for start in range(0, len(older), _IN_BATCH):
        chunk = older[start:start + _IN_BATCH]
        if Piece.objects.filter(hash__in=chunk, last_used__lt=used_at).update(last_used=used_at) < len(chunk):
            gone |= set(chunk) - set(Piece.objects.filter(hash__in=chunk).values_list("hash", flat=True))
    new = []
    for h in pieces:
        if h not in present or h in gone:
            data = piece_compress(pieces[h])
            new.append(Piece(hash=h, data=data, size=len(pieces[h]), stored=len(data), last_used=used_at))
    if new:
        Piece.objects.bulk_create(new, ignore_conflicts=True, batch_size=100)
    return Stored(bumped=sorted(stale - gone), inserted=[p.hash for p in new])


def exchanges_compact(*, batch: int = 200) -> int:
    """Store the bodies of rows written whole (before pieces, or with
    ``INSPECTOR_STORE_PIECES`` off) as pieces, oldest first, a batch per transaction; they read
    back as they did. Returns how many rows were rewritten."""
    from django.db import transaction

    from inspector.models import Exchange

    cache = PieceCache()
    names = [f.attname for f in Exchange._meta.concrete_fields]
    done = 0
    while True:
        rows = list(Exchange.objects.filter(bodies__isnull=True).order_by("created_at", "pk")[:batch])
        if not rows:
            return done
        pieces: dict[str, bytes] = {}
        splits = []
        for exchange in rows:
            row = {name: getattr(exchange, name) for name in names}
            pieces.update(row_split(row))
            splits.append((exchange.pk, row))
        used_at = max(e.created_at for e in rows)  # retention's rule: at least the newest holder's
        present = pieces_present(pieces)
        with transaction.atomic():
            stored = pieces_store(pieces, present=present, used_at=used_at, cache=cache)
            for pk, row in splits:
                Exchange.objects.filter(pk=pk, bodies__isnull=True).update(
                    bodies=row["bodies"], stored_bytes=row["stored_bytes"], **{c: {} for c in BODY_COLUMNS})
        cache.remember(stored, used_at)
        done += len(rows)
