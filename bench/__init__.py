"""relman benchmarks: `make bench` (python -m bench) measures floors and relman against them.

Each section returns plain dicts; :mod:`bench.report` turns them into ratios, target verdicts,
``bench/results/latest.json`` and ``bench/results/latest.md``. Nothing here is part of
``make test``; the bench's own unit tests live in ``bench/tests``.
"""
