"""What a generated shapes_world soundtrack says, read from its samples: the hum's pitch (and so the colour
that hums it) and the bounce clicks (and so the frames they fall on).

Audio is `[N]` float in [-1, 1] at `shapes_world.SAMPLE_RATE`; its sample 0 is the start of video frame 0.
Pitches, frame rate and sample rate are the world's own constants.
"""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np

from videopoet_jax.data import shapes_world as world

COLOR_NAMES = tuple(world.PITCH_HZ)
PITCHES_HZ = np.array([world.PITCH_HZ[c] for c in COLOR_NAMES])
SEMITONES_PER_OCTAVE = 12
# A measured pitch names a colour only within this many semitones of its hum: half the smallest interval
# between two hums (so each pitch has at most one colour), and the same distance beyond the end hums.
PITCH_TOLERANCE_SEMITONES = 0.5 * float(np.min(np.diff(SEMITONES_PER_OCTAVE * np.log2(np.sort(PITCHES_HZ)))))
# YIN searches an octave below the lowest and above the highest hum, so off-palette pitches are measured
# (and rejected) rather than folded onto the palette.
PITCH_SEARCH_HZ = (float(PITCHES_HZ.min()) / 2, float(PITCHES_HZ.max()) * 2)
# YIN window (64 ms: 8 periods of the lowest searched pitch) and hop (16 ms).
PITCH_FRAME = 1024
PITCH_HOP = 256
# Frames quieter than this (RMS) are silence and carry no pitch: 1% of the world's hum amplitude.
SILENCE_RMS = 0.01 * world.HUM_AMPLITUDE
# The median pitch counts only when at least this fraction of the sounding frames agree with it (within
# the tolerance): a hum holds one pitch over the clip, noise does not.
PITCH_AGREEMENT = 0.5
# Clicks are broadband noise and the hums pure tones: onsets are detected on the mel bands above an octave
# over the highest hum, where no hum has energy.
CLICK_BAND_HZ = float(PITCHES_HZ.max()) * 2
# Onset envelope: 32 ms windows every 8 ms.
ONSET_FFT = 512
ONSET_HOP = 128
# An onset is a click when the envelope (mean log-power rise over those bands, dB) exceeds its local
# average by this much. Measured on 60 test seeds: 16 to 37 dB at clicks, at most 2.4 dB elsewhere on the
# rendered audio (the fade-out) and 0.3 dB on the audio tokenizer's round trips.
CLICK_STRENGTH_DB = 6.0
# Peaks closer than half a video frame are one click; onsets within half a frame of either end of the clip
# are where the hum fades in and out (a bounce is never on frame 0, and a click on the last frame starts a
# whole frame before the end).
CLICK_SEPARATION_SECONDS = 0.5 / world.FPS
# A click matches a bounce within this many video frames.
CLICK_TOLERANCE_FRAMES = 1.0


def pitch_hz(audio: np.ndarray, sample_rate: int = world.SAMPLE_RATE) -> float | None:
  """The hum's pitch in Hz of `[N]` float audio in [-1, 1]: the median YIN estimate over sounding frames,
  or None when the audio is silent or fewer than PITCH_AGREEMENT of its sounding frames agree with it."""
  audio = np.asarray(audio, np.float32)
  if len(audio) < PITCH_FRAME:
    return None
  f0 = librosa.yin(
    audio,
    fmin=PITCH_SEARCH_HZ[0],
    fmax=PITCH_SEARCH_HZ[1],
    sr=sample_rate,
    frame_length=PITCH_FRAME,
    hop_length=PITCH_HOP,
  )
  rms = librosa.feature.rms(y=audio, frame_length=PITCH_FRAME, hop_length=PITCH_HOP)[0]
  f0 = f0[: len(rms)][rms[: len(f0)] >= SILENCE_RMS]
  if len(f0) == 0:
    return None
  median = float(np.median(f0))
  agree = np.abs(SEMITONES_PER_OCTAVE * np.log2(f0 / median)) <= PITCH_TOLERANCE_SEMITONES
  return median if agree.mean() >= PITCH_AGREEMENT else None


def color_of_pitch(hz: float | None) -> str | None:
  """The colour whose hum (`shapes_world.PITCH_HZ`) is nearest `hz` in semitones, None when none is within
  PITCH_TOLERANCE_SEMITONES (or `hz` is None)."""
  if hz is None:
    return None
  distance = np.abs(SEMITONES_PER_OCTAVE * np.log2(PITCHES_HZ / hz))
  best = int(np.argmin(distance))
  return COLOR_NAMES[best] if distance[best] <= PITCH_TOLERANCE_SEMITONES else None


def click_times(audio: np.ndarray, sample_rate: int = world.SAMPLE_RATE) -> np.ndarray:
  """Onset times in seconds `[K]` float of the clicks in `[N]` float audio (librosa onset detection on the
  bands above CLICK_BAND_HZ, absolute threshold CLICK_STRENGTH_DB)."""
  audio = np.asarray(audio, np.float32)
  envelope = librosa.onset.onset_strength(
    y=audio, sr=sample_rate, n_fft=ONSET_FFT, hop_length=ONSET_HOP, fmin=CLICK_BAND_HZ
  )
  separation = int(round(CLICK_SEPARATION_SECONDS * sample_rate / ONSET_HOP))  # in envelope frames
  frames = librosa.onset.onset_detect(
    onset_envelope=envelope,
    sr=sample_rate,
    hop_length=ONSET_HOP,
    normalize=False,
    delta=CLICK_STRENGTH_DB,
    pre_max=separation,
    post_max=separation,
    wait=separation,
    units="frames",
  )
  times = librosa.frames_to_time(frames, sr=sample_rate, hop_length=ONSET_HOP)
  duration = len(audio) / sample_rate
  inside = (times >= CLICK_SEPARATION_SECONDS) & (times <= duration - CLICK_SEPARATION_SECONDS)
  return times[inside]


def click_frames(audio: np.ndarray, sample_rate: int = world.SAMPLE_RATE) -> np.ndarray:
  """`[K]` float video-frame positions (seconds x FPS) of the clicks in `[N]` float audio."""
  return click_times(audio, sample_rate) * world.FPS


def clicks_match(clicks: np.ndarray, bounce_frames, tolerance: float = CLICK_TOLERANCE_FRAMES) -> bool:
  """Whether `[K]` click frame positions and the true bounce frames agree: every bounce has a click within
  `tolerance` frames and every click a bounce (so no bounce and no click also agree)."""
  clicks = np.asarray(clicks, np.float64)
  bounces = np.asarray(list(bounce_frames), np.float64)
  if len(clicks) == 0 or len(bounces) == 0:
    return len(clicks) == len(bounces)
  gap = np.abs(clicks[:, None] - bounces[None, :]) <= tolerance
  return bool(gap.any(axis=0).all() and gap.any(axis=1).all())


@dataclasses.dataclass(frozen=True)
class AudioAnalysis:
  """What `analyze_audio` read: `pitch_hz` (None: no steady pitch), the `color` humming it (None: no palette
  hum within tolerance) and `click_frames` `[K]` float video-frame positions of the clicks."""

  pitch_hz: float | None
  color: str | None
  click_frames: np.ndarray

  def attributes(self) -> dict:
    """JSON-ready fields."""
    return {"pitch_hz": self.pitch_hz, "color": self.color, "click_frames": self.click_frames.tolist()}


def analyze_audio(audio: np.ndarray, sample_rate: int = world.SAMPLE_RATE) -> AudioAnalysis:
  """Pitch, colour and clicks of `[N]` float audio in [-1, 1] at `sample_rate`."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1:
    raise ValueError(f"expected mono [N] audio, got shape {audio.shape}")
  hz = pitch_hz(audio, sample_rate)
  return AudioAnalysis(pitch_hz=hz, color=color_of_pitch(hz), click_frames=click_frames(audio, sample_rate))
