"""``python -m tests.bench [--quick] [--peers]``: run the benchmark, write ``bench-results/``."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tests.bench.harness import REPO, bench_run
from tests.bench.report import docs_update, results_write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few requests per scenario (smoke run)")
    parser.add_argument("--peers", action="store_true", help="also run every scenario through LiteLLM")
    parser.add_argument("--litellm-venv", type=Path, default=REPO / ".cache" / "litellm-venv")
    parser.add_argument("--rounds", type=int, default=0, help="alternating rounds (default 2, QUICK 1)")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--update-docs", type=Path, nargs="?", const=REPO / "docs" / "performance.md",
                        default=None, help="replace the generated block of docs/performance.md")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
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
