"""``make golden`` (``python -m tests.translation.golden_update``): rewrite the golden upstream
bodies of tests/translation/test_presets_exact_bodies.py from the current translators.

It only writes, never asserts: it prints each file it created or changed (and any file no
preset/case owns any more) so the change can be read in ``git diff`` before committing. The test
suite only compares; it never writes a golden file.
"""

from __future__ import annotations

import sys

from tests.translation.test_presets_exact_bodies import (
    ALL_CASES,
    ALL_PRESETS,
    GOLDEN,
    golden_path,
    golden_text,
    outcome,
)


def main() -> int:
    changed: list[str] = []
    for preset in ALL_PRESETS:
        for case in ALL_CASES:
            path = golden_path(preset, case)
            text = golden_text(outcome(preset, case))
            old = path.read_text() if path.exists() else None
            if old == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(f"{'new' if old is None else 'changed'}: {path.relative_to(GOLDEN.parents[2])}")
    expected = {golden_path(p, c) for p in ALL_PRESETS for c in ALL_CASES}
    stale = sorted(p for p in GOLDEN.glob("*/*.json") if p not in expected)
    for line in changed:
        print(line)
    for path in stale:
        print(f"stale (no preset/case writes it; delete it): {path.relative_to(GOLDEN.parents[2])}")
    total = len(ALL_PRESETS) * len(ALL_CASES)
    print(f"{len(changed)} of {total} golden files written; review them with `git diff {GOLDEN.relative_to(GOLDEN.parents[2])}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
