"""Percentiles from sorted samples, and a uniform summary of latency samples."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (1..99) of ``samples`` via :func:`statistics.quantiles`.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not 1 <= p <= 99:
        raise ValueError(f"percentile must be within 1..99, got {p}")
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return float(samples[0])
    cuts = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return cuts[p - 1]


def summarize_ms(samples_s: Sequence[float], elapsed_s: float | None = None) -> dict[str, Any]:
    """p50/p99/mean/max in milliseconds for samples in seconds, and ops/s if ``elapsed_s``.

    Throughput is ``len(samples) / elapsed_s``: completed operations per wall-clock second of
    the measured phase (warm-up excluded).
    """
    out: dict[str, Any] = {
        "n": len(samples_s),
        "p50_ms": percentile(samples_s, 50) * 1000,
        "p99_ms": percentile(samples_s, 99) * 1000,
        "mean_ms": statistics.fmean(samples_s) * 1000,
        "max_ms": max(samples_s) * 1000,
    }
    if elapsed_s is not None:
        out["elapsed_s"] = elapsed_s
        out["per_s"] = len(samples_s) / elapsed_s if elapsed_s > 0 else 0.0
    return out
