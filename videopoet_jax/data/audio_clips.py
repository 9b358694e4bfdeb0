"""Training crops for the audio tokenizer: procedural shapes_world audio and real recordings.

Example i of a run is a pure function of (config.seed, i) (see tokenizer_clips.indexed_batches), so a
resumed run continues with exactly the crops an uninterrupted run would have seen. Every
`holdout_every`-th file of each folder is held out for evaluation (`split_files`).
"""

from __future__ import annotations

import logging

import librosa
import ml_collections
import numpy as np

from videopoet_jax.data import media, shapes_world, tokenizer_clips

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff")
# Redraws of a crop that came out silent before accepting it.
SILENCE_RETRIES = 4


def split_files(data: ml_collections.ConfigDict) -> tuple[list[str], list[str]]:
  """`(train, heldout)` paths: in each folder of data.audio_dirs, sorted by name, files 0, k, 2k, ... with
  k = data.holdout_every are held out."""
  train, heldout = [], []
  for folder in data.audio_dirs:
    for i, path in enumerate(tokenizer_clips.list_files(folder, AUDIO_EXTENSIONS)):
      (heldout if i % data.holdout_every == 0 else train).append(path)
  return train, heldout


class Recordings:
  """Decoded recordings held in memory at one sample rate, sampled as random crops."""

  def __init__(self, paths: list[str], sample_rate: int):
    self.waves = []
    for path in paths:
      try:
        self.waves.append(media.read_audio(path, sample_rate))
      except media.MediaError as e:
        logging.warning("skipping %s", e)
    if not self.waves:
      raise ValueError(f"no readable recording among {len(paths)} files")
    lengths = np.array([len(w) for w in self.waves], np.float64)
    # Long files are sampled more often, but a short sample still gets a fair share.
    self.weights = np.sqrt(lengths) / np.sqrt(lengths).sum()
    logging.info("recordings: %d files, %.1f s", len(self.waves), lengths.sum() / sample_rate)

  def sample(self, rng: np.random.Generator, samples: int) -> np.ndarray:
    """A random `[samples]` float32 crop (zero-padded at a random offset when the file is shorter)."""
    wave = self.waves[rng.choice(len(self.waves), p=self.weights)]
    if len(wave) >= samples:
      start = rng.integers(0, len(wave) - samples + 1)
      return wave[start : start + samples]
    out = np.zeros(samples, np.float32)
    offset = rng.integers(0, samples - len(wave) + 1)
    out[offset : offset + len(wave)] = wave
    return out


def procedural_audio(seed: int, samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
  """A random `[samples]` crop of shapes_world clip `seed`'s audio (tiled when the clip is shorter)."""
  wave = shapes_world.render(seed)["audio"]
  if sample_rate != shapes_world.SAMPLE_RATE:
    wave = librosa.resample(wave, orig_sr=shapes_world.SAMPLE_RATE, target_sr=sample_rate)
  wave = np.tile(wave, -(-samples // len(wave)))
  start = rng.integers(0, len(wave) - samples + 1)
  return wave[start : start + samples].astype(np.float32)


def make_crop_fn(data: ml_collections.ConfigDict, sample_rate: int, seed: int):
  """Returns `index -> [data.clip_samples]` float32 in [-1, 1], peak-normalized to a random level."""
  recordings = None
  if data.procedural_fraction < 1.0:
    if not data.audio_dirs:
      raise ValueError("config.data.audio_dirs is empty but the mixture asks for real recordings")
    recordings = Recordings(split_files(data)[0], sample_rate)

  def crop(index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    for _ in range(SILENCE_RETRIES):
      if rng.random() < data.procedural_fraction:
        wave = procedural_audio(int(rng.integers(2**31)), data.clip_samples, sample_rate, rng)
      else:
        wave = recordings.sample(rng, data.clip_samples)
      peak = float(np.max(np.abs(wave)))
      if peak >= data.min_peak:
        break
    target = 10.0 ** (rng.uniform(*data.peak_db_range) / 20.0)
    return (wave * (target / max(peak, data.min_peak))).astype(np.float32)

  return crop


def training_batches(
  data: ml_collections.ConfigDict,
  sample_rate: int,
  batch_size: int,
  seed: int,
  start_step: int,
  num_steps: int,
):
  """Batches `[batch_size, clip_samples]` float32 in [-1, 1] for steps start_step + 1 .. num_steps."""
  crop = make_crop_fn(data, sample_rate, seed)
  return tokenizer_clips.indexed_batches(crop, batch_size, start_step, num_steps, data.workers)
