"""``python -m tests.bench [--quick] [--peers]``: run the benchmark, write ``bench-results/``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from tests.bench.harness import REPO, bench_run
from tests.bench.report import docs_update, results_write
from tests.bench.routing import routing_markdown, routing_run
from tests.bench.storage import storage_markdown, storage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few requests per scenario (smoke run)")
    parser.add_argument("--peers", action="store_true", help="also run every scenario through LiteLLM")
    parser.add_argument("--litellm-venv", type=Path, default=REPO / ".cache" / "litellm-venv")
    parser.add_argument("--rounds", type=int, default=0, help="alternating rounds (default 2, QUICK 1)")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this "
                        "(\"storage\": the storage benchmark alone, tests/bench/storage.py; \"routing\": "
                        "choosing a route's target, tests/bench/routing.py)")
    parser.add_argument("--no-storage", action="store_true", help="leave out the storage benchmark")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--update-docs", type=Path, nargs="?", const=REPO / "docs" / "performance.md",
                        default=None, help="replace the generated block of docs/performance.md")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    if not args.only or args.only == "routing":
        # What choosing a route's target adds per request (gateway.routing), in-process.
        routing = routing_markdown(routing_run(quick=args.quick))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "routing.md").write_text(routing + "\n")
        print(routing)
        print(f"wrote {args.out / 'routing.md'}")
        if args.only == "routing":
            return 0
    if not args.no_storage and (not args.only or args.only == "storage"):
        # A replayed Claude Code session: what the inspector stores, and the writer's CPU.
        runs = storage_run(turns=3 if args.quick else 30, quick=args.quick, log=lambda line: print(line, flush=True))
        storage = storage_markdown(runs)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "storage.md").write_text(storage + "\n")
        (args.out / "storage.json").write_text(json.dumps(runs, indent=2))
        print()
        print(storage)
        print(f"wrote {args.out / 'storage.md'}")
        if args.only == "storage":
            return 0
    results = bench_run(quick=args.quick, peers=args.peers, rounds=rounds, only=args.only,
                        litellm_venv=args.litellm_venv, log=lambda line: print(line, flush=True))
    json_path, md_path, png_path, table = results_write(results, args.out)
    print()
    print(table)
    print(f"wrote {json_path}, {md_path}, {png_path}")
    if args.update_docs:
        docs_update(args.update_docs, table)
        shutil.copyfile(png_path, args.update_docs.with_suffix(".png"))
        print(f"updated {args.update_docs} and its chart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
