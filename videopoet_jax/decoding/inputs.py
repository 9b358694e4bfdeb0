"""User media brought to the model's clip format, with a note of every change made.

Videos are resampled to the model's fps (nearest earlier frame), center-cropped to a square and resized;
images likewise; masks and boxes given in the input's pixels follow the same crop and resize.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from videopoet_jax.data import conditioning, media


@dataclasses.dataclass
class Prepared:
  frames: np.ndarray  # [T, S, S, 3] uint8 in the model's format
  crop: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the input that became the square
  input_shape: tuple[int, int]  # the input's (height, width)
  notes: list[str]


def _square(height: int, width: int) -> tuple[int, int, int, int]:
  side = min(height, width)
  x0, y0 = (width - side) // 2, (height - side) // 2
  return x0, y0, x0 + side, y0 + side


def _fit(frames: np.ndarray, size: int, notes: list[str]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  height, width = frames.shape[1:3]
  crop = _square(height, width)
  if (height, width) != (size, size):
    cropped = "" if height == width else f" center-cropped to {crop[2] - crop[0]}x{crop[3] - crop[1]},"
    notes.append(f"{width}x{height} pixels:{cropped} resized to {size}x{size}")
  return media.crop_resize(frames, size, crop), crop


def read_clip(path: str, size: int, fps: float, frames: int | None = None, min_frames: int = 1) -> Prepared:
  """Reads a video as `[T, size, size, 3]` uint8 at `fps`: all of it (`frames=None`) or exactly `frames`
  frames (cut, or padded by repeating the last frame). Raises MediaError (one line) when it cannot be read
  or has fewer than `min_frames` frames at `fps`."""
  if _is_image(path):
    raise media.MediaError(f"{path} is an image; this task needs a video of at least {min_frames} frames")
  decoded = media.read_video(path)
  notes = [decoded.note] if decoded.note else []
  index = media.resample_indices(len(decoded.frames), decoded.fps, fps)
  if abs(decoded.fps - fps) > 1e-3:
    notes.append(
      f"resampled from {decoded.fps:g} fps to {fps:g} fps ({len(decoded.frames)} -> {len(index)} frames)"
    )
  video = decoded.frames[index]
  if len(video) < min_frames:
    what = "an image" if len(decoded.frames) == 1 else f"{len(video)} frames at {fps:g} fps"
    raise media.MediaError(f"{path} is {what}; this task needs a video of at least {min_frames} frames")
  if frames is not None and len(video) > frames:
    notes.append(f"cut to the first {frames} frames ({frames / fps:g} s)")
    video = video[:frames]
  elif frames is not None and len(video) < frames:
    notes.append(f"padded from {len(video)} to {frames} frames by repeating the last one")
    video = np.concatenate([video, np.repeat(video[-1:], frames - len(video), axis=0)])
  video, crop = _fit(video, size, notes)
  return Prepared(video, crop, decoded.frames.shape[1:3], notes)


def _is_image(path: str) -> bool:
  try:
    with Image.open(path) as image:
      return getattr(image, "n_frames", 1) == 1
  except (OSError, ValueError):
    return False


def read_image(path: str, size: int) -> Prepared:
  """Reads an image (or a video's first frame) as `[1, size, size, 3]` uint8."""
  try:
    with Image.open(path) as image:
      frame = np.asarray(image.convert("RGB"))[None]
  except (OSError, ValueError):
    frame = media.read_video(path).frames[:1]
  notes = []
  shape = frame.shape[1:3]
  frame, crop = _fit(frame, size, notes)
  return Prepared(frame, crop, shape, notes)


def box_mask(box: tuple[int, int, int, int], prepared: Prepared, size: int) -> np.ndarray:
  """`(x0, y0, x1, y1)` in the input's pixels -> `[size, size]` bool in the model's pixels."""
  height, width = prepared.input_shape
  x0, y0, x1, y1 = box
  if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
    raise ValueError(f"box {box} does not lie inside the {width}x{height} input with x0 < x1 and y0 < y1")
  mask = np.zeros((height, width), np.uint8)
  mask[y0:y1, x0:x1] = 255
  return _mask_to_model(mask, prepared, size)


def read_mask(path: str, prepared: Prepared, size: int) -> np.ndarray:
  """A PNG the input's size (white = the region) -> `[size, size]` bool in the model's pixels."""
  try:
    with Image.open(path) as image:
      mask = np.asarray(image.convert("L"))
  except (OSError, ValueError) as e:
    raise media.MediaError(f"cannot read the mask {path}: {e}") from e
  if mask.shape != tuple(prepared.input_shape):
    height, width = prepared.input_shape
    raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the input video is {width}x{height}")
  return _mask_to_model(mask, prepared, size)


def _mask_to_model(mask: np.ndarray, prepared: Prepared, size: int) -> np.ndarray:
  x0, y0, x1, y1 = prepared.crop
  resized = Image.fromarray(mask[y0:y1, x0:x1]).resize((size, size), Image.BOX)
  out = np.asarray(resized) >= 128
  if not out.any():
    raise ValueError("the mask or box covers no pixel of the model's center-cropped square")
  return out


def default_mask(size: int) -> np.ndarray:
  """`[size, size]` bool: the centered half-side square the training masks used: the region to regenerate
  (inpaint) or to keep (outpaint)."""
  return conditioning.pixel_mask("inpaint", size, size)
