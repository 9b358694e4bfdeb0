"""Region metrics for the conditioned tasks: mask IoU (stylization) and PSNR inside a region against the
mean-colour fill baseline (inpainting / outpainting)."""

from __future__ import annotations

import numpy as np

PIXEL_PEAK = 255.0
# The smallest MSE a PSNR is computed from (caps an exact match at 10 log10(255^2 / 1e-10) = 148 dB, as
# video_metrics.psnr does).
MIN_MSE = 1e-10


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
  """Intersection over union of two bool masks of the same shape (e.g. `[T, H, W]`, over all frames at
  once), in [0, 1]; 1.0 when both are empty."""
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  if a.shape != b.shape:
    raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
  union = np.logical_or(a, b).sum()
  return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _region(video: np.ndarray, region: np.ndarray) -> np.ndarray:
  """`[T, H, W]` bool of an `[H, W]` (every frame) or `[T, H, W]` region of a `[T, H, W, 3]` video."""
  region = np.asarray(region, bool)
  return np.broadcast_to(region, video.shape[:-1])


def region_psnr(reference: np.ndarray, test: np.ndarray, region: np.ndarray) -> float:
  """PSNR in dB of `test` against `reference` (`[T, H, W, 3]` uint8) over the pixels of `region` (`[H, W]`
  or `[T, H, W]` bool, not empty)."""
  reference, test = np.asarray(reference), np.asarray(test)
  if reference.shape != test.shape:
    raise ValueError(f"video shapes differ: {reference.shape} vs {test.shape}")
  inside = _region(reference, region)
  if not inside.any():
    raise ValueError("the region is empty")
  diff = reference[inside].astype(np.float64) - test[inside].astype(np.float64)
  return float(10.0 * np.log10(PIXEL_PEAK**2 / max(float(np.mean(diff**2)), MIN_MSE)))


def mean_fill(video: np.ndarray, region: np.ndarray) -> np.ndarray:
  """The baseline: `[T, H, W, 3]` uint8 `video` with `region` (`[H, W]` or `[T, H, W]` bool) set to the mean
  colour of the visible (outside the region) pixels of the whole clip."""
  video = np.asarray(video)
  inside = _region(video, region)
  if inside.all():
    raise ValueError("the region covers the whole video: no visible pixels")
  out = video.copy()
  out[inside] = np.round(video[~inside].reshape(-1, 3).mean(axis=0)).astype(video.dtype)
  return out


def psnr_gain(reference: np.ndarray, generated: np.ndarray, region: np.ndarray) -> dict[str, float]:
  """PSNR inside `region` of `generated` and of the mean-colour fill of `reference` (both against the
  `reference`, `[T, H, W, 3]` uint8), and the gain (generated minus baseline, dB)."""
  psnr = region_psnr(reference, generated, region)
  baseline = region_psnr(reference, mean_fill(reference, region), region)
  return {"psnr_db": psnr, "baseline_psnr_db": baseline, "psnr_gain_db": psnr - baseline}
