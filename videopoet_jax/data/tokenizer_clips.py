"""Training clips for the video tokenizer: procedural clips, real footage, and camera moves over photos.

Example i of a run is a pure function of (config.seed, i), so a grain MapDataset indexes the stream and a
resumed run continues with exactly the clips an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import os

import grain
import ml_collections
import numpy as np
from PIL import Image

from videopoet_jax.data import media, shapes_world

# Photos smaller than this (shorter side, pixels) are skipped: icons and test patterns.
MIN_PHOTO_SIDE = 128
# A camera move over a photo: window side as a fraction of the shorter side, and zoom from start to end.
PAN_WINDOW_FRACTION = (0.3, 0.9)
PAN_ZOOM_RANGE = (0.8, 1.25)
# Source frames are cached with at most this many pixels on their longer side.
CACHE_MAX_SIDE = 192
# Random crops cover this fraction range of the frame's shorter side.
CROP_FRACTION = (0.5, 1.0)
# Playback speed range (1 = the clip's own fps).
SPEED_RANGE = (0.75, 1.5)


def list_files(folder: str, extensions: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
  """Files directly in `folder` with one of `extensions`, sorted, minus the names in `exclude`."""
  names = sorted(n for n in os.listdir(folder) if n.lower().endswith(extensions))
  return [os.path.join(folder, n) for n in names if n not in exclude]


class RealFootage:
  """Decoded training videos held in memory, sampled as random crops, speeds and flips."""

  def __init__(self, paths: list[str]):
    self.videos = []
    for path in paths:
      try:
        self.videos.append(media.read_video(path, max_side=CACHE_MAX_SIDE))
      except media.MediaError as e:
        logging.warning("skipping %s", e)
    if not self.videos:
      raise ValueError(f"no readable training video among {paths}")
    durations = np.array([len(v.frames) / v.fps for v in self.videos])
    self.weights = durations / durations.sum()
    logging.info("real footage: %d videos, %.1f s", len(self.videos), durations.sum())

  def sample(self, rng: np.random.Generator, frames: int, fps: float, size: int) -> np.ndarray:
    """A random `[frames, size, size, 3]` uint8 clip."""
    video = self.videos[rng.choice(len(self.videos), p=self.weights)]
    speed = rng.uniform(*SPEED_RANGE)
    span_s = (frames - 1) * speed / fps
    total_s = len(video.frames) / video.fps
    start_s = rng.uniform(0.0, max(total_s - span_s - 1.0 / video.fps, 0.0))
    times = start_s + np.arange(frames) * speed / fps
    index = np.minimum((times * video.fps).astype(np.int64), len(video.frames) - 1)
    clip = video.frames[index]
    h, w = clip.shape[1:3]
    side = int(min(h, w) * rng.uniform(*CROP_FRACTION))
    x0, y0 = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
    clip = media.crop_resize(clip, size, (x0, y0, x0 + side, y0 + side))
    return clip[:, :, ::-1] if rng.random() < 0.5 else clip


class PhotoPans:
  """Still photos turned into clips by a random camera pan and zoom (MAGVIT-v2 also learns from images)."""

  def __init__(self, paths: list[str]):
    self.images = []
    for path in paths:
      try:
        image = Image.open(path).convert("RGB")
      except OSError as e:
        logging.warning("skipping %s: %s", path, e)
        continue
      if min(image.size) < MIN_PHOTO_SIDE:
        continue
      image.thumbnail((CACHE_MAX_SIDE * 2, CACHE_MAX_SIDE * 2))
      self.images.append(image)
    if not self.images:
      raise ValueError(f"no usable photo (at least {MIN_PHOTO_SIDE} px) among {len(paths)} files")
    logging.info("photos: %d", len(self.images))

  def sample(self, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A random `[frames, size, size, 3]` uint8 clip moving across one photo."""
    image = self.images[rng.integers(len(self.images))]
    w, h = image.size
    start_side = min(w, h) * rng.uniform(*PAN_WINDOW_FRACTION)
    end_side = min(start_side * rng.uniform(*PAN_ZOOM_RANGE), min(w, h))
    sides = np.linspace(start_side, end_side, frames)
    # Window centres move in a straight line between two random points that keep the window inside.
    ends = [rng.uniform([s / 2, s / 2], [w - s / 2, h - s / 2]) for s in (start_side, end_side)]
    centres = np.linspace(ends[0], ends[1], frames)
    out = []
    for (cx, cy), side in zip(centres, sides, strict=True):
      box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
      out.append(np.asarray(image.resize((size, size), Image.BOX, box=box)))
    clip = np.stack(out)
    return clip[:, :, ::-1] if rng.random() < 0.5 else clip


def procedural_clip(seed: int, frames: int, size: int) -> np.ndarray:
  """shapes_world clip `seed` as `[frames, size, size, 3]` uint8 (first frames): rendered at `size` where it
  is a multiple of the world's size (sharp edges at every scale), box-resized otherwise."""
  scale = max(size // shapes_world.SIZE, 1)
  video = shapes_world.render(seed, scale=scale)["video"][:frames]
  if size != video.shape[1]:
    video = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BOX)) for f in video])
  return video


def make_clip_fn(data: ml_collections.ConfigDict, seed: int):
  """Returns `index -> [T, H, W, 3]` float32 clip in [-1, 1].

  A clip is procedural with probability `procedural_fraction`, a photo pan with `photo_fraction`, and real
  footage otherwise.
  """
  holdout = tuple(data.holdout)
  photos = footage = None
  if data.photo_fraction > 0:
    if not data.photo_dir:
      raise ValueError("config.data.photo_fraction > 0 needs config.data.photo_dir, a folder of photos")
    photos = PhotoPans(list_files(data.photo_dir, media.IMAGE_EXTENSIONS, holdout))
  if data.procedural_fraction + data.photo_fraction < 1.0:
    if not data.video_dir:
      raise ValueError("config.data.video_dir is empty but the mixture asks for real footage")
    footage = RealFootage(list_files(data.video_dir, media.VIDEO_EXTENSIONS, holdout))

  def clip(index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    draw = rng.random()
    if draw < data.procedural_fraction:
      frames = procedural_clip(int(rng.integers(2**31)), data.frames, data.size)
    elif draw < data.procedural_fraction + data.photo_fraction:
      frames = photos.sample(rng, data.frames, data.size)
    else:
      frames = footage.sample(rng, data.frames, data.fps, data.size)
    return media.to_model_range(frames)

  return clip


def indexed_batches(
  example, batch_size: int, start_step: int, num_steps: int, workers: int
) -> grain.IterDataset:
  """Batches of `example(index)` for steps start_step + 1 .. num_steps (step s holds examples
  (s - 1) * batch_size .. s * batch_size - 1), prepared by `workers` threads."""
  dataset = grain.MapDataset.range(start_step * batch_size, num_steps * batch_size).map(example)
  return dataset.batch(batch_size).to_iter_dataset(
    grain.ReadOptions(num_threads=max(workers, 1), prefetch_buffer_size=2 * max(workers, 1))
  )


def training_batches(
  data: ml_collections.ConfigDict, batch_size: int, seed: int, start_step: int, num_steps: int
) -> grain.IterDataset:
  """Batches `[batch_size, T, H, W, 3]` float32 in [-1, 1] for steps start_step + 1 .. num_steps."""
  return indexed_batches(make_clip_fn(data, seed), batch_size, start_step, num_steps, data.workers)
