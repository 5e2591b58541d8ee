"""Timing and reporting shared by the benchmark sections: interleaved rounds, ratios, rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ROWS: list[dict] = []


def timed(
    variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds per call of each variant, one sample per round, timed in interleaved rounds.

    In each round every variant is called once untimed and then timed over a burst of calls
    (enough for about 5 ms), so each sample is steady-state repetition, as in a training loop,
    and no variant pays for the caches a different variant left cold (measured: timing single
    calls after a 25 ms loop baseline made the first variant of a round 1.2x-1.45x slower).
    The starting variant also rotates from round to round.
    """
    burst = {}
    for name, fn in variants.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        burst[name] = max(1, min(50, round(5e-3 / (time.perf_counter() - start))))
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = variants[name]
            fn()
            start = time.perf_counter()
            for _ in range(burst[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / burst[name])
    return samples


def report(
    section: str, case: str, samples: dict[str, list[float]], base: str, notes: str = ""
) -> None:
    """Print one table row per variant: median time, and its ratio to ``base`` (>1: base is
    faster) as the median of the per-round ratios, with their interquartile range: variants of
    one round ran within milliseconds of each other, so the machine's drift cancels."""
    for name, times in samples.items():
        median = statistics.median(times)
        if len(times) == len(samples[base]):
            ratios = [t / b for t, b in zip(times, samples[base], strict=True)]
        else:  # timed in fewer rounds (a slow dense baseline): the ratio of the medians
            ratios = [median / statistics.median(samples[base])]
        ratio = statistics.median(ratios)
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratio,) * 3
        ROWS.append(
            {
                "section": section,
                "case": case,
                "variant": name,
                "median_s": median,
                "ratio_to_" + base.replace(" ", "_"): ratio,
                "ratio_interquartile": [low, high],
                "notes": notes,
            }
        )
        print(
            f"| {section} | {case} | {name} | {median * 1e3:9.3f} ms | "
            f"{ratio:6.2f}x {base} ({low:.2f}-{high:.2f}) | {notes} |"
        )
