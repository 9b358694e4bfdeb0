"""PSNR and SSIM of uint8 video clips `[N, T, H, W, 3]`, and the tokenizer round trip that feeds them."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from videopoet_jax.data import media

PIXEL_PEAK = 255.0
# SSIM constants (Wang et al. 2004): Gaussian window sigma 1.5, K1 0.01, K2 0.03.
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * PIXEL_PEAK) ** 2
SSIM_C2 = (0.03 * PIXEL_PEAK) ** 2


def psnr(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
  """Per-clip PSNR in dB: `[N, ...]` uint8 pairs -> `[N]` (MSE over all of a clip's pixels)."""
  diff = reference.astype(np.float64) - test.astype(np.float64)
  mse = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
  return 10.0 * np.log10(PIXEL_PEAK**2 / np.maximum(mse, 1e-10))


def ssim(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
  """Per-clip SSIM: `[N, T, H, W, 3]` uint8 pairs -> `[N]`, averaged over frames, pixels and channels."""
  x, y = reference.astype(np.float64), test.astype(np.float64)
  sigma = (0, 0, SSIM_SIGMA, SSIM_SIGMA, 0)  # blur H and W only
  mu_x, mu_y = gaussian_filter(x, sigma), gaussian_filter(y, sigma)
  var_x = gaussian_filter(x * x, sigma) - mu_x**2
  var_y = gaussian_filter(y * y, sigma) - mu_y**2
  cov = gaussian_filter(x * y, sigma) - mu_x * mu_y
  num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
  den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
  return (num / den).reshape(len(x), -1).mean(axis=1)


def clips_from_video(video: str | media.DecodedVideo, frames: int, fps: float, size: int) -> np.ndarray:
  """Cuts a video (a file, or one already decoded) into consecutive `[N, frames, size, size, 3]` uint8
  clips in the tokenizer format.

  Frames are resampled to `fps`, center-cropped and resized; a last partial clip is padded by repeating
  its final frame, so every frame of the file is covered.
  """
  decoded = media.read_video(video) if isinstance(video, str) else video
  index = media.resample_indices(len(decoded.frames), decoded.fps, fps)
  video = media.crop_resize(decoded.frames[index], size)
  num_clips = -(-len(video) // frames)
  pad = num_clips * frames - len(video)
  video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)])
  return video.reshape(num_clips, frames, size, size, 3)


def round_trip(encode_decode, clips: np.ndarray, batch_size: int) -> np.ndarray:
  """Runs `encode_decode` (float `[B, T, H, W, 3]` in [-1, 1] -> same) over uint8 clips in batches."""
  out = []
  for start in range(0, len(clips), batch_size):
    batch = clips[start : start + batch_size]
    pad = batch_size - len(batch)
    padded = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)]) if pad else batch
    out.append(media.from_model_range(encode_decode(media.to_model_range(padded)))[: len(batch)])
  return np.concatenate(out)
