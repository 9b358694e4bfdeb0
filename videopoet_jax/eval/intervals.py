"""95% intervals for per-sample scores: Wilson for rates (booleans), Student t for means (e.g. PSNR gains)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _z(confidence: float) -> float:
  return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
  """Wilson score interval `(low, high)` in [0, 1] of a rate `successes / n`; (0, 1) when n is 0."""
  if n == 0:
    return 0.0, 1.0
  z = _z(confidence)
  p = successes / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
  """Student t interval `(low, high)` of the mean of `[N]` floats; (nan, nan) with fewer than two values,
  (mean, mean) when they are all equal."""
  values = np.asarray(values, np.float64)
  if len(values) < 2:
    return math.nan, math.nan
  mean = float(values.mean())
  half = float(
    stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
  )
  return mean - half, mean + half


def summarize_rate(flags, target: float | None = None) -> dict:
  """JSON-ready summary of `[N]` booleans: n, value (the rate), its Wilson 95% interval (low, high), the
  target, `meets_target` (value >= target) and `confident` (low >= target); the last three None without a
  target."""
  flags = [bool(f) for f in flags]
  n, k = len(flags), sum(flags)
  low, high = wilson_interval(k, n)
  return _with_target(
    {"kind": "rate", "n": n, "value": k / n if n else math.nan, "low": low, "high": high}, target
  )


def summarize_mean(values, target: float | None = None) -> dict:
  """JSON-ready summary of `[N]` floats: n, value (the mean), its t 95% interval (low, high) and the target
  fields as in `summarize_rate`."""
  values = [float(v) for v in values]
  low, high = t_interval(values)
  mean = float(np.mean(values)) if values else math.nan
  return _with_target({"kind": "mean", "n": len(values), "value": mean, "low": low, "high": high}, target)


def _with_target(summary: dict, target: float | None) -> dict:
  summary["target"] = target
  summary["meets_target"] = None if target is None else bool(summary["value"] >= target)
  summary["confident"] = None if target is None else bool(summary["low"] >= target)
  return summary
