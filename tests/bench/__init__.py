"""The benchmark (``make bench``, ``make bench-peers``): ``python -m tests.bench --help``.

No file here starts with ``test_``: pytest does not collect the benchmark; the smoke test
``tests/test_bench_smoke.py`` runs its quickest mode.
"""
