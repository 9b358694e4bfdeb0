"""What a user's edited footage needs before it becomes clips: shots, letterbox crops and clip filters.

  shots = footage.shots(frames)                    # [(start, stop)] source frame ranges, no cut inside
  box = footage.letterbox(frames)                  # (x0, y0, x1, y1) of the picture inside black bars
  reason = footage.reject_reason(clip, flow, opts) # None, or "static" | "blank" | "dark" | "washed_out"
  hashes = footage.DuplicateFilter(opts.duplicate_fraction); hashes.seen(clip)

Shots come from PySceneDetect's content detector (hard cuts: HSV change between frames) and from runs of
black frames (fades to and from black); the clip_folder builder never lets a clip span a boundary.
Frames are `[T, H, W, 3]` uint8 RGB throughout.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scenedetect.detectors import ContentDetector

# Rec. 601 luma weights.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# The perceptual hash's grid per frame (HASH_SIDE^2 bits): fine enough that a small object in another
# place is another clip.
HASH_SIDE = 16


@dataclasses.dataclass(frozen=True)
class FootageOptions:
  """Thresholds of the shot detectors and the filters (ClipFolderConfig carries them).

  content_threshold: ContentDetector's HSV change that is a cut (PySceneDetect's default 27).
  fade_threshold: a flat frame darker than this mean luma is black (a fade's bottom; PySceneDetect's 12).
  letterbox_level: border rows/columns whose brightest pixel over the video stays below this are bars.
  static_flow: a clip whose mean optical-flow magnitude (pixels a frame) is below this is near-static.
  blank_std: a frame whose luma standard deviation is below this is blank (black, white or one colour).
  dark_luma / bright_luma: a clip whose brightest 1% of pixels is below / darkest 1% above these is too
    dark / washed out.
  duplicate_fraction: clips whose perceptual hashes differ in at most this fraction of bits are duplicates.
  """

  content_threshold: float = 27.0
  fade_threshold: float = 12.0
  letterbox_level: int = 24
  static_flow: float = 0.05
  blank_std: float = 4.0
  dark_luma: float = 40.0
  bright_luma: float = 220.0
  duplicate_fraction: float = 0.05


def luma(frames: np.ndarray) -> np.ndarray:
  """`[..., 3]` uint8 RGB -> `[...]` float32 luma in [0, 255]."""
  return np.asarray(frames, np.float32) @ LUMA


def black_frames(frames: np.ndarray, options: FootageOptions = FootageOptions()) -> np.ndarray:
  """`[T]` bool: frames that are flat and dark (mean luma below `fade_threshold`, luma standard deviation
  below `blank_std`): the bottom of a fade to or from black."""
  y = luma(np.asarray(frames)).reshape(len(frames), -1)
  return (y.mean(axis=1) < options.fade_threshold) & (y.std(axis=1) < options.blank_std)


def shots(frames: np.ndarray, options: FootageOptions = FootageOptions()) -> list[tuple[int, int]]:
  """`[(start, stop)]` frame ranges of the shots of `[T, H, W, 3]` uint8, in order: a new shot starts at
  every hard cut (PySceneDetect's ContentDetector), and runs of black frames (`black_frames`: a fade to or
  from black, or a black gap) separate shots and belong to none. (PySceneDetect's ThresholdDetector reads
  the frame mean only, so it cut footage on a black background wherever a small object was; measured.)"""
  content = ContentDetector(threshold=options.content_threshold, min_scene_len=1)
  cuts = set()
  for i, frame in enumerate(np.asarray(frames)):
    cuts.update(content.process_frame(i, np.ascontiguousarray(frame[..., ::-1])))  # OpenCV's BGR
  black = black_frames(frames, options)
  out, start = [], None
  for i in range(len(frames) + 1):
    boundary = i == len(frames) or black[i] or i in cuts
    if start is not None and boundary:
      out.append((start, i))
      start = None
    if start is None and i < len(frames) and not black[i]:
      start = i
  return out


def letterbox(frames: np.ndarray, options: FootageOptions = FootageOptions()) -> tuple[int, int, int, int]:
  """`(x0, y0, x1, y1)` of the picture inside black bars of `[T, H, W, 3]` uint8 (the whole frame when
  there are none): border rows and columns whose brightest pixel over the video stays below
  `letterbox_level`, when the picture inside is brighter than that (a dark scene's own black edges are not
  bars)."""
  y = luma(np.asarray(frames))
  brightest = y.max(axis=0)  # [H, W]
  height, width = brightest.shape
  rows = np.nonzero(brightest.max(axis=1) >= options.letterbox_level)[0]
  cols = np.nonzero(brightest.max(axis=0) >= options.letterbox_level)[0]
  if len(rows) == 0 or len(cols) == 0:  # all dark: nothing to crop (the blank filter decides)
    return 0, 0, width, height
  box = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
  if np.median(y[:, box[1] : box[3], box[0] : box[2]]) < options.letterbox_level:
    return 0, 0, width, height
  return box


def reject_reason(
  clip: np.ndarray, flow: np.ndarray, options: FootageOptions = FootageOptions()
) -> str | None:
  """Why a clip `[T, H, W, 3]` uint8 with its optical flow `[T, H, W, 2]` should not be trained on, or None
  to keep it: "blank" (most frames one flat colour), "dark" (its brightest 1% of pixels below
  `dark_luma`), "washed_out" (its darkest 1% above `bright_luma`), "static" (mean flow magnitude below
  `static_flow`)."""
  y = luma(clip)
  if (y.reshape(len(y), -1).std(axis=1) < options.blank_std).mean() > 0.5:
    return "blank"
  if np.percentile(y, 99) < options.dark_luma:
    return "dark"
  if np.percentile(y, 1) > options.bright_luma:
    return "washed_out"
  if np.linalg.norm(np.asarray(flow, np.float32), axis=-1).mean() < options.static_flow:
    return "static"
  return None


def _average_hash(images: np.ndarray) -> np.ndarray:
  """`[N, H, W]` float -> `[N * HASH_SIDE^2]` bool: HASH_SIDE x HASH_SIDE cells above their image's mean."""
  n, h, w = images.shape
  side = HASH_SIDE
  cells = images[:, : h // side * side, : w // side * side].reshape(n, side, h // side, side, w // side)
  cells = cells.mean(axis=(2, 4))
  return (cells > cells.mean(axis=(1, 2), keepdims=True)).ravel()


def perceptual_hash(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(appearance, motion)` bool hashes of a clip `[T, H, W, 3]` uint8: the average hash of its first,
  middle and last frames, and that of where it changes (mean absolute frame difference), so the same
  static-camera scene at another time (other people walking) is not a copy."""
  y = luma(clip)
  appearance = _average_hash(y[[0, len(y) // 2, -1]])
  motion = _average_hash(np.abs(np.diff(y, axis=0)).mean(axis=0, keepdims=True))
  return appearance, motion


class DuplicateFilter:
  """Remembers the hashes of the clips kept so far; `seen(clip)` says whether a near-copy was kept."""

  def __init__(self, max_fraction: float):
    self.max_fraction, self.hashes = max_fraction, []

  def seen(self, clip: np.ndarray) -> bool:
    """True when a kept clip's appearance and motion hashes both differ from this one's in at most
    `max_fraction` of their bits; otherwise remembers this one."""
    return self.seen_hash(perceptual_hash(clip))

  def seen_hash(self, code: tuple[np.ndarray, np.ndarray]) -> bool:
    """`seen` of a clip whose `perceptual_hash` is `code` (hashes are what a distributed build gathers)."""
    for kept in self.hashes:
      if max(np.mean(a != b) for a, b in zip(code, kept, strict=True)) <= self.max_fraction:
        return True
    self.hashes.append(code)
    return False
