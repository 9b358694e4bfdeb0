"""What a generated shapes_world video shows, read from its pixels: background, object mask, colour, shape,
size, motion direction, presence and motion.

Everything is measured against the world's own constants (`shapes_world`): palettes, shape masks, speeds,
directions and frame rate are imported, never copied. The analysis assumes one object (the `default` and
`compositional` configs); it does not separate the two of `two_objects`. Videos are `[T, H, W, 3]` uint8
and may be blurry and noisy (they come out of the lossy video tokenizer).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from videopoet_jax.data import shapes_world as world

BACKGROUND_NAMES = tuple(world.BACKGROUNDS)
BACKGROUND_RGB = np.array([world.BACKGROUNDS[n] for n in BACKGROUND_NAMES], np.float32)
COLOR_NAMES = tuple(world.COLORS)
COLOR_RGB = np.array([world.COLORS[n] for n in COLOR_NAMES], np.float32)
# A pixel is an object candidate when it is this far (RGB Euclidean) from the background colour: half the
# smallest distance between any object colour and any background colour of the palette (green on gray).
CANDIDATE_DISTANCE = 0.5 * float(np.min(np.linalg.norm(COLOR_RGB[:, None] - BACKGROUND_RGB[None], axis=-1)))
# The object mask keeps pixels more than this fraction of the way from the background colour to the object
# colour (projected on that segment): a blurred edge crosses one half where the sharp edge was, so the
# mask keeps the object's area and extent.
MASK_FRACTION = 0.5
# The smallest object a frame can show: a third of the smallest ideal shape area (below it, a blob of
# stray pixels; a blurred small triangle keeps well over half its area).
MIN_OBJECT_FRACTION = 1 / 3
# Sub-pixel centre offsets (per axis) the ideal fill ratios and areas are averaged over.
CALIBRATION_OFFSETS = (0.0, 0.25, 0.5, 0.75)
# Frames where the first object moves straight in its captioned direction (0 .. FRAMES_BEFORE_BOUNCE).
STRAIGHT_FRAMES = world.FRAMES_BEFORE_BOUNCE + 1
# Below this centroid speed (pixels per frame) an object counts as still: half the world's slowest speed,
# so a moving object is twice above it; the fitted speeds of still objects on 60 tokenizer round trips
# stayed below 0.6.
STILL_SPEED = 0.5 * world.SPEED_RANGE[0]
# `moving` looks at the last second of the video. Over it, an object at the slowest speed spans twice
# MOTION_SPAN pixels even when it bounces halfway; on 60 tokenizer round trips, still objects spanned at
# most 3.1 px and moving ones at least 5.1 px (MOTION_SPAN is 4).
MOTION_WINDOW = world.FPS
MOTION_SPAN = world.SPEED_RANGE[0] * MOTION_WINDOW / 4


@functools.cache
def ideal_shape_stats() -> dict[tuple[str, str], tuple[float, float]]:
  """`{(shape, size): (fill ratio, area in pixels)}` of the world's own rasterized shapes, averaged over
  sub-pixel centre offsets (circle ~pi/4, square 1, triangle ~0.5)."""
  stats = {}
  centre = world.SIZE / 2
  for shape, size in world.SHAPE_DIMENSIONS:
    ratios, areas = [], []
    for dx in CALIBRATION_OFFSETS:
      for dy in CALIBRATION_OFFSETS:
        mask = world.shape_mask(shape, size, centre + dx, centre + dy)
        ratios.append(fill_ratio(mask))
        areas.append(float(mask.sum()))
    stats[(shape, size)] = (float(np.mean(ratios)), float(np.mean(areas)))
  return stats


def ideal_fill_ratios() -> dict[str, float]:
  """`{shape: fill ratio}`, the mean over the world's sizes of `ideal_shape_stats`."""
  stats = ideal_shape_stats()
  return {s: float(np.mean([stats[(s, z)][0] for z in world.SIZES])) for s in world.SHAPES}


def min_object_pixels() -> float:
  """Pixels the largest blob of a frame needs to count as the object."""
  return MIN_OBJECT_FRACTION * min(area for _, area in ideal_shape_stats().values())


def nearest(rgb: np.ndarray, palette: np.ndarray, names: tuple[str, ...]) -> str:
  """Name of the palette entry `[K, 3]` nearest (RGB Euclidean) to the colour `rgb` `[3]` (0..255)."""
  return names[int(np.argmin(np.linalg.norm(palette - np.asarray(rgb, np.float32), axis=-1)))]


def background_rgb(video: np.ndarray) -> np.ndarray:
  """`[3]` float32 measured background colour: the per-channel median of all pixels of `[T, H, W, 3]` uint8
  (an object covers at most a tenth of a frame)."""
  return np.median(np.asarray(video).reshape(-1, 3), axis=0).astype(np.float32)


def fill_ratio(mask: np.ndarray) -> float:
  """Area of a `[H, W]` bool mask over the area of its bounding box, in (0, 1]; 0 for an empty mask."""
  ys, xs = np.nonzero(mask)
  if len(ys) == 0:
    return 0.0
  return float(len(ys) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))


def largest_blob(mask: np.ndarray) -> np.ndarray:
  """`[H, W]` bool: the largest 8-connected component of `mask` (all False when it is empty)."""
  labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
  if count == 0:
    return mask.copy()
  sizes = np.bincount(labels.ravel())[1:]
  return labels == 1 + int(np.argmax(sizes))


def object_masks(video: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """Per-frame object masks of `[T, H, W, 3]` uint8 and the measured object colour.

  Candidates are pixels CANDIDATE_DISTANCE from `background` `[3]`; the object colour `[3]` is the median of
  the candidates' core (those at least as far from the background as their median); the mask keeps pixels
  past MASK_FRACTION of the way from the background to that colour, then each frame's largest blob, dropped
  when it is smaller than `min_object_pixels()`.

  Returns:
    `[T, H, W]` bool masks and the object colour `[3]` float32 (None when no frame shows an object).
  """
  pixels = np.asarray(video, np.float32)
  offset = pixels - background
  distance = np.linalg.norm(offset, axis=-1)
  candidates = distance > CANDIDATE_DISTANCE
  if not candidates.any():
    return np.zeros(distance.shape, bool), None
  core = candidates & (distance >= np.median(distance[candidates]))
  color = np.median(pixels[core], axis=0)
  axis = color - background
  along = (offset @ axis) / max(float(axis @ axis), 1.0)
  masks = np.stack([largest_blob(frame) for frame in along > MASK_FRACTION])
  masks[masks.sum(axis=(1, 2)) < min_object_pixels()] = False
  if not masks.any():
    return masks, None
  return masks, color


def shape_of(masks: np.ndarray) -> tuple[str | None, float]:
  """`(shape, fill ratio)` of `[T, H, W]` bool masks: the median fill ratio over frames showing the object,
  and the shape whose ideal ratio (`ideal_fill_ratios`) is nearest; (None, 0.0) without an object."""
  ratios = [fill_ratio(m) for m in masks if m.any()]
  if not ratios:
    return None, 0.0
  ratio = float(np.median(ratios))
  ideal = ideal_fill_ratios()
  return min(ideal, key=lambda s: abs(ideal[s] - ratio)), ratio


def _centred_template(shape: str, size: str, cx: float, cy: float) -> np.ndarray:
  """`[H, W]` bool ideal mask of (shape, size) whose pixel centroid (not bounding box centre) is (cx, cy)."""
  mask = world.shape_mask(shape, size, cx, cy)
  ys, xs = np.nonzero(mask)
  return world.shape_mask(shape, size, 2 * cx - xs.mean() - 0.5, 2 * cy - ys.mean() - 0.5)


def shape_by_template(masks: np.ndarray) -> str | None:
  """An alternative shape estimate of `[T, H, W]` bool masks (not the scored one): per frame, the world
  shape and size whose ideal mask, centred on the frame's centroid, has the highest IoU with it; the shape
  most frames vote for. More robust to blur than the fill ratio (see bench/shapes_analysis.py). None
  without an object."""
  votes = dict.fromkeys(world.SHAPES, 0)
  for mask in masks:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
      continue
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    best, best_iou = None, -1.0
    for shape, size in world.SHAPE_DIMENSIONS:
      template = _centred_template(shape, size, cx, cy)
      iou = (template & mask).sum() / (template | mask).sum()
      if iou > best_iou:
        best, best_iou = shape, iou
    votes[best] += 1
  return max(votes, key=votes.get) if any(votes.values()) else None


def size_of(masks: np.ndarray, shape: str | None) -> str | None:
  """The size whose ideal area for `shape` is nearest (in log area) to the median area of the frames of
  `[T, H, W]` bool masks that show the object; None without an object."""
  areas = [m.sum() for m in masks if m.any()]
  if shape is None or not areas:
    return None
  area = float(np.median(areas))
  stats = ideal_shape_stats()
  return min(world.SIZES, key=lambda z: abs(np.log(stats[(shape, z)][1] / area)))


def centroids(masks: np.ndarray) -> np.ndarray:
  """`[T, 2]` float (x, y) pixel centroids of `[T, H, W]` bool masks; NaN where a frame has no object."""
  out = np.full((len(masks), 2), np.nan)
  for t, mask in enumerate(masks):
    ys, xs = np.nonzero(mask)
    if len(ys):
      out[t] = xs.mean() + 0.5, ys.mean() + 0.5
  return out


def velocity(track: np.ndarray) -> np.ndarray | None:
  """Least-squares `[2]` (dx, dy) pixels per frame of a `[T, 2]` centroid track (NaN rows skipped); None
  with fewer than two known points."""
  known = ~np.isnan(track[:, 0])
  if known.sum() < 2:
    return None
  frames = np.nonzero(known)[0].astype(np.float64)
  return np.polyfit(frames, track[known], 1)[0]


def direction_of(track: np.ndarray) -> str | None:
  """The world direction of a `[T, 2]` centroid track over its first STRAIGHT_FRAMES frames (where the world
  moves objects straight): "still" below STILL_SPEED, else the direction nearest the fitted velocity."""
  v = velocity(track[:STRAIGHT_FRAMES])
  if v is None:
    return None
  if np.max(np.abs(v)) < STILL_SPEED:
    return "still"
  moves = {d: np.array(u, np.float64) for d, u in world.DIRECTIONS.items() if any(u)}
  return max(moves, key=lambda d: float(moves[d] @ v))


def is_moving(track: np.ndarray, window: int = MOTION_WINDOW) -> bool:
  """Whether the object of a `[T, 2]` centroid track moves over its last `window` + 1 frames: its centroids
  there span at least MOTION_SPAN pixels along x or y. The span survives bounces (unlike a fitted velocity)
  and jitter does not add up in it (unlike a path length). False when fewer than two of those frames show
  the object."""
  recent = track[-(window + 1) :]
  recent = recent[~np.isnan(recent[:, 0])]
  if len(recent) < 2:
    return False
  return bool(np.max(recent.max(axis=0) - recent.min(axis=0)) >= MOTION_SPAN)


@dataclasses.dataclass(frozen=True)
class VideoAnalysis:
  """What `analyze_video` read from a `[T, H, W, 3]` video.

  background: nearest palette background name. color, shape, size, direction: world attribute names, None
  when no frame shows an object (direction also with a single frame). fill_ratio: median mask fill ratio
  in [0, 1] (what `shape` is read from). shape_template: `shape_by_template`'s estimate (not scored).
  masks: `[T, H, W]` bool object masks. track: `[T, 2]` (x, y) centroids, NaN where absent. present: `[T]`
  bool. moving: the object moves over the last MOTION_WINDOW frames.
  """

  background: str
  color: str | None
  shape: str | None
  size: str | None
  direction: str | None
  fill_ratio: float
  shape_template: str | None
  masks: np.ndarray
  track: np.ndarray
  present: np.ndarray
  moving: bool

  def attributes(self) -> dict:
    """The attribute names and scalars (JSON-ready; no arrays)."""
    return {
      "background": self.background,
      "color": self.color,
      "shape": self.shape,
      "size": self.size,
      "direction": self.direction,
      "fill_ratio": self.fill_ratio,
      "shape_template": self.shape_template,
      "present_frames": int(self.present.sum()),
      "moving": self.moving,
    }


def analyze_video(video: np.ndarray) -> VideoAnalysis:
  """Reads background, object mask, colour, shape, size, direction and motion from `[T, H, W, 3]` uint8
  (T >= 1; an image is a 1-frame video)."""
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f"expected a [T, H, W, 3] video, got shape {video.shape}")
  bg = background_rgb(video)
  masks, color_rgb = object_masks(video, bg)
  shape, ratio = shape_of(masks)
  track = centroids(masks)
  return VideoAnalysis(
    background=nearest(bg, BACKGROUND_RGB, BACKGROUND_NAMES),
    color=None if color_rgb is None else nearest(color_rgb, COLOR_RGB, COLOR_NAMES),
    shape=shape,
    size=size_of(masks, shape),
    direction=direction_of(track),
    fill_ratio=ratio,
    shape_template=shape_by_template(masks),
    masks=masks,
    track=track,
    present=masks.any(axis=(1, 2)),
    moving=is_moving(track),
  )
