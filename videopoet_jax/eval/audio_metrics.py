"""Audio quality metrics and the tokenizer round trip over a whole file.

The metric settings are fixed here, not taken from a model config, so scores of different models compare.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from videopoet_jax.tokenizers import spectral

# Multi-scale log-mel distance: windows 2^6 .. 2^11 (hop window / 4), 64 mel bins (SoundStream's L_rec).
MEL_DISTANCE_WINDOWS = (64, 128, 256, 512, 1024, 2048)
MEL_DISTANCE_BINS = 64
# The floored distance (issue 18's metric): log10 mel power at these FFT sizes (hop n / 4), 64 bins, both
# spectrograms floored at FLOOR_DB below the reference's loudest bin, so near-silent bands are not scored
# (the unfloored distance rewards a codec for filling them with noise).
FLOORED_FFT_SIZES = (512, 1024, 2048)
FLOOR_DB = 40.0
# Guards SI-SNR against silent references.
SI_SNR_EPSILON = 1e-8
# The band-limit baseline: audio resampled to this rate and back keeps content below half of it.
BANDLIMIT_RATE = 2000
# Dynamic range shown by spectrogram_image.
SPECTROGRAM_RANGE_DB = 80.0


def log_mel_distance(reference: np.ndarray, test: np.ndarray, sample_rate: int) -> np.ndarray:
  """Per example `[B]` multi-scale log-mel distance (lower is better) of `[B, N]` waves: the mean over
  windows s of mean |log(S + eps) - log(S' + eps)|, S the mel magnitudes of window s and hop s / 4.

  Computed with numpy/librosa (files of any length, nothing to compile) with the filterbank of the
  training loss's `spectral.mel_spectrogram` (which the tests check against librosa).
  """
  distances = []
  for window in MEL_DISTANCE_WINDOWS:
    filters = spectral.mel_filterbank(sample_rate, window, MEL_DISTANCE_BINS)
    mels = []
    for wave in (reference, test):
      stft = librosa.stft(
        np.asarray(wave, np.float32), n_fft=window, hop_length=window // 4, pad_mode="reflect"
      )
      mels.append(np.swapaxes(np.abs(stft), -1, -2) @ filters)  # [B, frames, mels]
    diff = np.abs(np.log(mels[0] + spectral.LOG_FLOOR) - np.log(mels[1] + spectral.LOG_FLOOR))
    distances.append(diff.mean(axis=(-2, -1)))
  return np.mean(distances, axis=0)


def floored_mel_distance(reference: np.ndarray, test: np.ndarray, sample_rate: int) -> np.ndarray:
  """Per example `[B]` multi-scale log10-mel L1 distance of `[B, N]` waves (lower is better): for each FFT
  size n of FLOORED_FFT_SIZES (hop n / 4, MEL_DISTANCE_BINS mel bins of power), both spectrograms floored at
  FLOOR_DB below the reference's loudest bin, mean |log10 S - log10 S'|; the mean over sizes."""
  reference, test = np.atleast_2d(reference).astype(np.float32), np.atleast_2d(test).astype(np.float32)
  distances = []
  for n in FLOORED_FFT_SIZES:
    options = dict(sr=sample_rate, n_fft=n, hop_length=n // 4, n_mels=MEL_DISTANCE_BINS, power=2.0)
    ref = librosa.feature.melspectrogram(y=reference, **options)  # [B, mels, frames]
    out = librosa.feature.melspectrogram(y=test, **options)
    floor = ref.max(axis=(-2, -1), keepdims=True) * 10 ** (-FLOOR_DB / 10) + np.finfo(np.float32).tiny
    diff = np.abs(np.log10(np.maximum(ref, floor)) - np.log10(np.maximum(out, floor)))
    distances.append(diff.mean(axis=(-2, -1)))
  return np.mean(distances, axis=0)


def si_snr(reference, test):
  """Scale-invariant SNR in dB per example: `[B, N]` pairs -> `[B]` (numpy or jax arrays)."""
  xp = jnp if isinstance(reference, jnp.ndarray) else np
  reference = reference - reference.mean(axis=-1, keepdims=True)
  test = test - test.mean(axis=-1, keepdims=True)
  scale = (test * reference).sum(-1, keepdims=True) / ((reference**2).sum(-1, keepdims=True) + SI_SNR_EPSILON)
  target = scale * reference
  noise = test - target
  return 10.0 * xp.log10(((target**2).sum(-1) + SI_SNR_EPSILON) / ((noise**2).sum(-1) + SI_SNR_EPSILON))


def bandlimit(wave: np.ndarray, sample_rate: int, limit_rate: int = BANDLIMIT_RATE) -> np.ndarray:
  """`[N]` resampled to `limit_rate` and back (keeps content below limit_rate / 2): the baseline."""
  low = librosa.resample(wave, orig_sr=sample_rate, target_sr=limit_rate)
  back = librosa.resample(low, orig_sr=limit_rate, target_sr=sample_rate)
  return np.pad(back, (0, max(len(wave) - len(back), 0)))[: len(wave)].astype(np.float32)


def windows_from_wave(wave: np.ndarray, window: int) -> np.ndarray:
  """`[N]` -> `[ceil(N / window), window]`, the last window zero-padded."""
  count = -(-len(wave) // window)
  return np.pad(wave, (0, count * window - len(wave))).reshape(count, window)


def round_trip(codec, wave: np.ndarray, window: int, batch_size: int) -> np.ndarray:
  """Runs `codec` (`[batch_size, window] -> [batch_size, window]`) over all of `[N]` in consecutive
  windows (batches padded with silence, so the codec always sees one shape); returns `[N]`."""
  windows = windows_from_wave(wave, window)
  count = len(windows)
  windows = np.pad(windows, ((0, -count % batch_size), (0, 0)))
  out = [np.asarray(codec(windows[i : i + batch_size])) for i in range(0, len(windows), batch_size)]
  return np.concatenate(out)[:count].reshape(-1)[: len(wave)]


class CodecEvaluator:
  """Round-trips whole waves `[N]` (at the tokenizer's rate) with the first `levels` RVQ levels and scores
  them; the codec is compiled once, for windows of config.data.eval_window_samples (whole frames)."""

  def __init__(self, tokenizer, config, levels: int, batch_size: int):
    self.geometry = tokenizer.geometry
    if not 1 <= levels <= self.geometry.levels:
      raise ValueError(f"levels must be in [1, {self.geometry.levels}], got {levels}")
    self.levels, self.batch_size = levels, batch_size
    self.window = self.geometry.samples(self.geometry.frames(config.data.eval_window_samples))
    self.codec = jax.jit(lambda x: tokenizer.decode(tokenizer.encode(x)[:, :levels]))

  def __call__(self, wave: np.ndarray) -> dict:
    """Returns seconds, windows, mel_distance and floored_mel_distance, si_snr, the same two distances of
    the 1 kHz band-limit baseline (bandlimit_...), kbps, tokens_per_second, levels and `reconstruction`
    `[N]`."""
    rate = self.geometry.sample_rate
    recon = round_trip(self.codec, wave, self.window, self.batch_size)
    limited = bandlimit(wave, rate)
    return {
      "seconds": len(wave) / rate,
      "windows": -(-len(wave) // self.window),
      "mel_distance": float(log_mel_distance(wave[None], recon[None], rate)[0]),
      "floored_mel_distance": float(floored_mel_distance(wave, recon, rate)[0]),
      "si_snr": float(si_snr(wave[None], recon[None])[0]),
      "bandlimit_mel_distance": float(log_mel_distance(wave[None], limited[None], rate)[0]),
      "bandlimit_floored_mel_distance": float(floored_mel_distance(wave, limited, rate)[0]),
      "kbps": self.geometry.kbps(self.levels),
      "tokens_per_second": self.levels * self.geometry.frame_rate,
      "levels": self.levels,
      "reconstruction": recon,
    }


def spectrogram_image(waves: list[np.ndarray], sample_rate: int, window: int = 1024) -> np.ndarray:
  """Log-mel spectrograms of `[N]` waves stacked top to bottom (low frequencies at the bottom of each band)
  as one `[rows, frames]` uint8 image: dark is quiet, bright is loud, on a shared 80 dB scale."""
  filters = spectral.mel_filterbank(sample_rate, window, MEL_DISTANCE_BINS)
  bands = []
  for wave in waves:
    stft = np.abs(librosa.stft(np.asarray(wave, np.float32), n_fft=window, hop_length=window // 4))
    bands.append(20 * np.log10(stft.T @ filters + spectral.LOG_FLOOR).T[::-1])
  image = np.concatenate(bands, axis=0)
  top = image.max()
  return (np.clip((image - top + SPECTROGRAM_RANGE_DB) / SPECTROGRAM_RANGE_DB, 0, 1) * 255).astype(np.uint8)
