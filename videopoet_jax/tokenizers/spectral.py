"""Spectrograms in jax and the spectral reconstruction losses of SoundStream.

Waveforms are `[B, N]` float32. Frames are centred (reflect padding of window // 2 on both sides, as
librosa's default) with a periodic Hann window; mel filterbanks come from librosa (Slaney scale and
normalisation), with filters that cover no FFT bin dropped (small windows cannot resolve low mel bands).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import librosa
import numpy as np

# Added under the square root of |X|^2 so the magnitude has a finite gradient at silence.
MAGNITUDE_FLOOR = 1e-7
# Added before the log of a (mel) magnitude.
LOG_FLOOR = 1e-5


def frame(wave: jax.Array, window: int, hop: int) -> jax.Array:
  """`[B, N]` -> overlapping frames `[B, 1 + (N - window) // hop, window]`."""
  num_frames = 1 + (wave.shape[1] - window) // hop
  index = np.arange(num_frames)[:, None] * hop + np.arange(window)[None, :]
  return wave[:, index]


def hann(window: int) -> np.ndarray:
  """Periodic Hann window `[window]` float32."""
  return np.hanning(window + 1)[:-1].astype(np.float32)


def stft(wave: jax.Array, window: int, hop: int) -> jax.Array:
  """`[B, N]` -> complex STFT `[B, 1 + N // hop, window // 2 + 1]` (centred frames, periodic Hann)."""
  if wave.shape[1] <= window // 2:
    raise ValueError(f"{wave.shape[1]} samples are too few for a {window}-sample STFT window")
  padded = jnp.pad(wave, ((0, 0), (window // 2, window // 2)), mode="reflect")
  return jnp.fft.rfft(frame(padded, window, hop) * hann(window), axis=-1)


def stft_magnitude(wave: jax.Array, window: int, hop: int) -> jax.Array:
  """`[B, N]` -> `[B, 1 + N // hop, window // 2 + 1]` STFT magnitudes."""
  spectrum = stft(wave, window, hop)
  return jnp.sqrt(spectrum.real**2 + spectrum.imag**2 + MAGNITUDE_FLOOR)


@functools.cache
def mel_filterbank(sample_rate: int, window: int, mel_bins: int) -> np.ndarray:
  """`[window // 2 + 1, M]` librosa mel filters (M <= mel_bins: empty filters removed)."""
  with warnings.catch_warnings():  # librosa warns about the empty filters dropped here.
    warnings.simplefilter("ignore", UserWarning)
    filters = librosa.filters.mel(sr=sample_rate, n_fft=window, n_mels=mel_bins)
  return np.ascontiguousarray(filters[filters.sum(axis=1) > 0].T.astype(np.float32))


def mel_spectrogram(wave: jax.Array, sample_rate: int, window: int, mel_bins: int) -> jax.Array:
  """`[B, N]` -> `[B, frames, M]` mel magnitudes, hop window // 4."""
  return stft_magnitude(wave, window, window // 4) @ mel_filterbank(sample_rate, window, mel_bins)


def multiscale_mel_loss(
  target: jax.Array, recon: jax.Array, sample_rate: int, windows: tuple[int, ...], mel_bins: int
) -> jax.Array:
  """SoundStream's L_rec, averaged over scales: per window s, mean |S - S'| + sqrt(s/2) * mean over
  frames of ||log S - log S'||_2, with S the mel magnitudes of window s and hop s/4."""
  total = 0.0
  for window in windows:
    mel_t = mel_spectrogram(target, sample_rate, window, mel_bins)
    mel_r = mel_spectrogram(recon, sample_rate, window, mel_bins)
    linear = jnp.mean(jnp.abs(mel_t - mel_r))
    log_diff = jnp.log(mel_t + LOG_FLOOR) - jnp.log(mel_r + LOG_FLOOR)
    log_l2 = jnp.mean(jnp.sqrt(jnp.sum(log_diff**2, axis=-1) + MAGNITUDE_FLOOR))
    total = total + linear + np.sqrt(window / 2) * log_l2
  return total / len(windows)


def multi_resolution_stft_loss(
  target: jax.Array, recon: jax.Array, resolutions: tuple[tuple[int, int], ...]
) -> jax.Array:
  """Mean over (window, hop) of spectral convergence ||S - S'||_F / ||S||_F plus mean |log S - log S'|."""
  total = 0.0
  for window, hop in resolutions:
    mag_t = stft_magnitude(target, window, hop)
    mag_r = stft_magnitude(recon, window, hop)
    convergence = jnp.linalg.norm(mag_t - mag_r) / jnp.maximum(jnp.linalg.norm(mag_t), LOG_FLOOR)
    log_mag = jnp.mean(jnp.abs(jnp.log(mag_t + LOG_FLOOR) - jnp.log(mag_r + LOG_FLOOR)))
    total = total + convergence + log_mag
  return total / len(resolutions)
