"""Training clips for the video tokenizer: procedural shapes_world clips mixed with real footage.

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

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
# Source frames are cached with at most this many pixels on their longer side.
CACHE_MAX_SIDE = 192
# Random crops cover this fraction range of the frame's shorter side.
CROP_FRACTION = (0.5, 1.0)
# Playback speed range (1 = the clip's own fps).
SPEED_RANGE = (0.75, 1.5)


def list_videos(video_dir: str, exclude: tuple[str, ...] = ()) -> list[str]:
  """Video files directly in `video_dir`, sorted, minus the names in `exclude`."""
  names = sorted(n for n in os.listdir(video_dir) if n.lower().endswith(VIDEO_EXTENSIONS))
  return [os.path.join(video_dir, n) for n in names if n not in exclude]


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


def procedural_clip(seed: int, frames: int, size: int) -> np.ndarray:
  """shapes_world clip `seed` as `[frames, size, size, 3]` uint8 (first frames, resized if needed)."""
  video = shapes_world.render(seed)["video"][:frames]
  if size != video.shape[1]:
    video = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BOX)) for f in video])
  return video


def make_clip_fn(data: ml_collections.ConfigDict, seed: int):
  """Returns `index -> [T, H, W, 3]` float32 clip in [-1, 1]."""
  footage = None
  if data.procedural_fraction < 1.0:
    if not data.video_dir:
      raise ValueError("config.data.video_dir is empty but procedural_fraction < 1: give a folder of videos")
    footage = RealFootage(list_videos(data.video_dir, tuple(data.holdout)))

  def clip(index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    if footage is None or rng.random() < data.procedural_fraction:
      frames = procedural_clip(int(rng.integers(2**31)), data.frames, data.size)
    else:
      frames = footage.sample(rng, data.frames, data.fps, data.size)
    return media.to_model_range(frames)

  return clip


def training_batches(
  data: ml_collections.ConfigDict, batch_size: int, seed: int, start_step: int, num_steps: int
) -> grain.IterDataset:
  """Batches `[batch_size, T, H, W, 3]` float32 in [-1, 1] for steps start_step .. num_steps - 1."""
  clip = make_clip_fn(data, seed)
  dataset = (
    grain.MapDataset.range(start_step * batch_size, num_steps * batch_size).map(clip).batch(batch_size)
  )
  return dataset.to_iter_dataset(
    grain.ReadOptions(num_threads=max(data.workers, 1), prefetch_buffer_size=2 * max(data.workers, 1))
  )
