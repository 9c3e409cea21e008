"""Structural diff of two JSON documents, each change labelled with the rewrite note behind it.

Pure Python, no Django: the exchange page calls ``json_diff`` on the client request body and
the upstream request body, then ``notes_attach`` with the exchange's rewrite notes. Paths use
the notation of the notes themselves (``messages[3].content``, ``chat_template_kwargs.x``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import orjson

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_MISSING = object()


@dataclass
class Change:
    op: str  # added | removed | changed
    old_path: str  # where it was in the first document ("" when added)
    new_path: str  # where it is in the second ("" when removed)
    old: Any = None
    new: Any = None
    note: dict[str, str] | None = None

    @property
    def path(self) -> str:
        if self.old_path and self.new_path and self.old_path != self.new_path:
            return f"{self.old_path} → {self.new_path}"
        return self.new_path or self.old_path


def _key_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _canon(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS,
                        default=str)


def json_diff(old: Any, new: Any) -> list[Change]:
    """Added, removed and changed paths from ``old`` to ``new``, in document order.

    Objects are compared key by key; lists are aligned with difflib so an inserted element (a
    hoisted system message) shows as one addition instead of shifting every later index.
    """
    changes: list[Change] = []
    _walk(old, new, "", "", changes)
    return changes


def _walk(old: Any, new: Any, old_path: str, new_path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            op, np = _key_path(old_path, key), _key_path(new_path, key)
            if key in new:
                _walk(old[key], new[key], op, np, out)
            else:
                out.append(Change(REMOVED, op, "", old=old[key]))
        for key in new:
            if key not in old:
                out.append(Change(ADDED, "", _key_path(new_path, key), new=new[key]))
        return
    if isinstance(old, list) and isinstance(new, list):
        _walk_list(old, new, old_path, new_path, out)
        return
    if type(old) is not type(new) or old != new:
        out.append(Change(CHANGED, old_path, new_path, old=old, new=new))


def _walk_list(old: list[Any], new: list[Any], old_path: str, new_path: str, out: list[Change]) -> None:
    matcher = difflib.SequenceMatcher(a=[_canon(v) for v in old], b=[_canon(v) for v in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for i, j in _pairs(old[i1:i2], new[j1:j2]):
            if i is not None and j is not None:
                _walk(old[i1 + i], new[j1 + j], f"{old_path}[{i1 + i}]", f"{new_path}[{j1 + j}]", out)
            elif i is not None:
                out.append(Change(REMOVED, f"{old_path}[{i1 + i}]", "", old=old[i1 + i]))
            elif j is not None:
                out.append(Change(ADDED, "", f"{new_path}[{j1 + j}]", new=new[j1 + j]))


# Replaced runs up to this many element pairs are aligned by what the elements share.
_ALIGN_MAX = 40_000


def _strings(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for child in value.values():
            _strings(child, out)
    elif isinstance(value, list):
        for child in value:
            _strings(child, out)
    return out


def _pairs(old: list[Any], new: list[Any]) -> list[tuple[int | None, int | None]]:
    """Which elements of two replaced runs are the same element changed, in order: the
    alignment sharing the most strings (a message keeps its role, its text, its tool call id
    through a translation), so a hoisted system message does not shift every later pairing.
    Elements sharing nothing are removed and added. Long runs pair by position."""
    n, m = len(old), len(new)
    if n * m > _ALIGN_MAX:
        paired = min(n, m)
        return ([(k, k) for k in range(paired)] + [(i, None) for i in range(paired, n)]
                + [(None, j) for j in range(paired, m)])
    a = [_strings(v, set()) for v in old]
    b = [_strings(v, set()) for v in new]
    score = [[len(x & y) for y in b] for x in a]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = best[i + 1][j + 1] + score[i][j] if score[i][j] else -1
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    out: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n and j < m:
        if score[i][j] and best[i][j] == best[i + 1][j + 1] + score[i][j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            out.append((i, None))
            i += 1
        else:
            out.append((None, j))
            j += 1
    out += [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]
    # What shares nothing with its neighbour run but sits at the same place is one element changed.
    return _pair_leftovers(out)


def _pair_leftovers(pairs: list[tuple[int | None, int | None]]) -> list[tuple[int | None, int | None]]:
    """A removed element directly followed by an added one (nothing in common: a scalar
    replaced) is one change, as a plain diff shows it."""
    out: list[tuple[int | None, int | None]] = []
    k = 0
    while k < len(pairs):
        i, j = pairs[k]
        if j is None and k + 1 < len(pairs) and pairs[k + 1][0] is None:
            out.append((i, pairs[k + 1][1]))
            k += 2
            continue
        out.append((i, j))
        k += 1
    return out


_SEGMENT = re.compile(r"[^.\[\]]+|\[\d+\]")


def path_segments(path: str) -> list[str]:
    """``messages[3].content`` -> ``["messages", "[3]", "content"]``."""
    return _SEGMENT.findall(path)


def _is_prefix(prefix: list[str], path: list[str]) -> bool:
    return bool(prefix) and path[: len(prefix)] == prefix


def _detail_names(detail: str, key: str) -> bool:
    """Whether a note's prose names ``key`` as a field: ``add_generation_prompt`` or ``stream: true``,
    not the word "model" in "so the model continues it"."""
    pattern = rf"\b{re.escape(key)}\b" + ("" if "_" in key else r"\s*[:=]")
    return re.search(pattern, detail) is not None


def note_for(change: Change, notes: list[dict[str, str]]) -> dict[str, str] | None:
    """The rewrite note that explains ``change``, best match first:

    1. a note path (comma-joined lists allowed) equal to the change's path or a parent of it;
    2. a note whose rule names the changed key (``prefill.continue_final_message`` for an
       added ``continue_final_message``);
    3. a note whose detail names the changed key as a field (``add_generation_prompt``);
    4. a note on a child of the changed path (a message whose block was dropped).
    """
    paths = [path_segments(p) for p in (change.old_path, change.new_path) if p]
    leaf = next((p[-1] for p in reversed(paths) if p and not p[-1].startswith("[")), "")
    ranked: list[tuple[int, int, dict[str, str]]] = []
    for order, note in enumerate(notes):
        note_paths = [path_segments(p.strip()) for p in str(note.get("path", "")).split(",") if p.strip()]
        rank = None
        if any(_is_prefix(np, p) for np in note_paths for p in paths):
            # Longest matching note path wins among parents.
            rank = -max(len(np) for np in note_paths)
        elif leaf and str(note.get("rule", "")).rsplit(".", 1)[-1] == leaf:
            rank = 100
        elif leaf and _detail_names(str(note.get("detail", "")), leaf):
            rank = 200
        elif any(_is_prefix(p, np) for np in note_paths for p in paths):
            rank = 300
        if rank is not None:
            ranked.append((rank, order, note))
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


def notes_attach(changes: list[Change], notes: list[dict[str, str]]) -> list[Change]:
    for change in changes:
        change.note = note_for(change, notes)
    return changes


def notes_unmatched(changes: list[Change], notes: list[dict[str, str]]) -> list[dict[str, str]]:
    """Notes no change points at (rules that changed something not visible as a path, e.g. a
    response rule), so the page can still list them."""
    used = {id(c.note) for c in changes if c.note is not None}
    return [n for n in notes if id(n) not in used]


# -- protocol mapping -----------------------------------------------------------------------

MAPPED = "mapped"
# Fields that carry the same meaning under another name with values of their own vocabulary
# (OpenAI's ``finish_reason: stop`` is Anthropic's ``stop_reason: end_turn``).
_RENAMED = {("finish_reason", "stop_reason"), ("stop_reason", "finish_reason"),
            ("prompt_tokens", "input_tokens"), ("input_tokens", "prompt_tokens"),
            ("completion_tokens", "output_tokens"), ("output_tokens", "completion_tokens"),
            ("max_tokens", "max_completion_tokens"), ("stop_sequences", "stop"), ("stop", "stop_sequences")}


def _subtrees(value: Any, path: str) -> list[tuple[str, Any]]:
    """``value`` and every value inside it, with their paths, outermost first."""
    out = [(path, value)]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _subtrees(child, _key_path(path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _subtrees(child, f"{path}[{i}]")
    return out


def _common(a: str, b: str) -> int:
    """How many leading path segments two paths share (``tools[1].name``, ``tools[1].function.name``: 2)."""
    n = 0
    for x, y in zip(path_segments(a), path_segments(b), strict=False):
        if x != y:
            break
        n += 1
    return n


def _leaf(path: str) -> str:
    segments = [s for s in path_segments(path) if not s.startswith("[")]
    return segments[-1] if segments else ""


def _prefixes(path: str) -> list[str]:
    """``a.b[0]`` -> ``["a", "a.b", "a.b[0]"]``."""
    out, current = [], ""
    for segment in path_segments(path):
        current = current + segment if segment.startswith("[") else _key_path(current, segment)
        out.append(current)
    return out or [path]


def mapping_pair(changes: list[Change]) -> list[Change]:
    """The same changes read as a protocol mapping: a value removed at one path and found at
    another (``tools[0].input_schema`` → ``tools[0].function.parameters``) becomes one ``mapped``
    change; a field renamed with its own vocabulary (``finish_reason stop`` → ``stop_reason
    end_turn``) too; what is left of a removed or added value is listed as removed or added.

    Values are matched whole, outermost first: a moved object is one row, not one per field.
    """
    removed = [c for c in changes if c.op == REMOVED]
    added = [c for c in changes if c.op == ADDED]
    others = [c for c in changes if c.op not in (REMOVED, ADDED)]
    # Every value inside what was added, by its canonical bytes (first occurrence wins).
    pool: dict[bytes, list[str]] = {}
    for change in added:
        for path, value in _subtrees(change.new, change.new_path):
            pool.setdefault(_canon(value), []).append(path)
    used: set[str] = set()  # added paths already matched
    touched: set[str] = set()  # ... and every path around them

    def free(path: str) -> bool:
        return path not in touched and not any(p in used for p in _prefixes(path))

    mapped: list[Change] = []
    left_removed: list[tuple[str, Any]] = []

    def take(path: str, value: Any) -> None:
        candidates = [p for p in pool.get(_canon(value), []) if free(p)]
        if candidates:
            best = max(candidates[:64], key=lambda p: (_leaf(p) == _leaf(path), _common(p, path)))
            used.add(best)
            touched.update(_prefixes(best))
            mapped.append(Change(MAPPED, path, best, old=value, new=value))
            return
        mapped_before, left_before = len(mapped), len(left_removed)
        if isinstance(value, dict) and value:
            for key, child in value.items():
                take(_key_path(path, key), child)
        elif isinstance(value, list) and value:
            for i, child in enumerate(value):
                take(f"{path}[{i}]", child)
        if len(mapped) == mapped_before:  # nothing inside found elsewhere: removed whole
            del left_removed[left_before:]
            left_removed.append((path, value))

    for change in removed:
        take(change.old_path, change.old)

    left_added: list[tuple[str, Any]] = []

    def rest(path: str, value: Any) -> None:
        if any(p in used for p in _prefixes(path)):
            return
        if path not in touched:
            left_added.append((path, value))
            return
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            rest(_key_path(path, key) if isinstance(key, str) else f"{path}[{key}]", child)

    for change in added:
        rest(change.new_path, change.new)

    out_removed: list[Change] = []
    for path, value in left_removed:
        leaf = _leaf(path)
        partner = next((i for i, (p, _) in enumerate(left_added) if (leaf, _leaf(p)) in _RENAMED), None)
        if partner is None:
            out_removed.append(Change(REMOVED, path, "", old=value))
        else:
            new_path, new_value = left_added.pop(partner)
            mapped.append(Change(MAPPED, path, new_path, old=value, new=new_value))
    return (mapped + others + out_removed
            + [Change(ADDED, "", p, new=v) for p, v in left_added])


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


def changes_grouped(changes: list[Change]) -> list[tuple[Change, int]]:
    """Changes that repeat for every element of a list (``tools[*].type`` added, each tool
    result's ``tool_call_id`` added, each tool's ``input_schema`` moved to
    ``function.parameters``, each message's content blocks joined into a string) as one row with
    a count, the first as its example; in the order they first appear."""
    groups: dict[tuple[str, str, bytes, bytes], list[Change]] = {}
    for change in changes:
        moved = change.op == MAPPED and change.old == change.new
        # A value of another type in every element (content blocks joined into a string) is one
        # reshaping, whatever each element held.
        reshaped = change.op == CHANGED and type(change.old) is not type(change.new)
        if change.op in (ADDED, REMOVED):  # the same field in every element, whatever its value
            key = (change.op, _generic(change.path), b"", b"")
        elif moved or reshaped:
            key = (change.op, _generic(change.path), type(change.old).__name__.encode(), type(change.new).__name__.encode())
        else:
            key = (change.op, _generic(change.path), _canon(change.old), _canon(change.new))
        groups.setdefault(key, []).append(change)
    return [(members[0], len(members)) for members in groups.values()]
