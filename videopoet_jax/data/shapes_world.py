"""The procedural audio-visual world: one coloured shape moving on a flat background, humming.

Every clip is a pure function of its seed. The palette, sizes, pitches and caption grammar below are part
of the evaluation contract: change them and the per-task scores stop meaning anything.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FRAMES = 17
FPS = 8
SIZE = 64
SAMPLE_RATE = 16_000
AUDIO_SAMPLES = 34_000  # FRAMES / FPS seconds.

BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (245, 245, 245)}
COLORS = {
  "red": (220, 40, 40),
  "green": (40, 200, 60),
  "blue": (50, 80, 230),
  "yellow": (235, 220, 50),
  "magenta": (210, 60, 210),
  "cyan": (60, 210, 220),
}
PITCH_HZ = {"red": 262.0, "green": 330.0, "blue": 392.0, "yellow": 523.0, "magenta": 659.0, "cyan": 784.0}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
# Circle radius, square side, triangle side, in pixels.
SHAPE_DIMENSIONS = {
  ("circle", "small"): 6,
  ("circle", "large"): 10,
  ("square", "small"): 12,
  ("square", "large"): 20,
  ("triangle", "small"): 14,
  ("triangle", "large"): 22,
}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}
SPEED_RANGE = (2, 3)  # pixels per frame
# Frames that must move in the captioned direction before the first bounce.
FRAMES_BEFORE_BOUNCE = 8
HUM_AMPLITUDE = 0.3
FADE_SECONDS = 0.010
CLICK_AMPLITUDE = 0.5
CLICK_SECONDS = 0.010


@dataclasses.dataclass(frozen=True)
class Attributes:
  shape: str
  size: str
  color: str
  direction: str
  background: str

  def caption(self) -> str:
    obj = f"a {self.size} {self.color} {self.shape}"
    if self.direction == "still":
      return f"{obj} stays still on a {self.background} background"
    return f"{obj} moves {self.direction} on a {self.background} background"


def sample_attributes(rng: np.random.Generator) -> Attributes:
  return Attributes(
    shape=str(rng.choice(SHAPES)),
    size=str(rng.choice(SIZES)),
    color=str(rng.choice(list(COLORS))),
    direction=str(rng.choice(list(DIRECTIONS))),
    background=str(rng.choice(list(BACKGROUNDS))),
  )


def half_extent(shape: str, size: str) -> tuple[float, float]:
  """Half width and half height of the shape's bounding box, in pixels."""
  d = SHAPE_DIMENSIONS[(shape, size)]
  if shape == "circle":
    return float(d), float(d)
  if shape == "square":
    return d / 2, d / 2
  return d / 2, d * np.sqrt(3) / 4


def shape_mask(shape: str, size: str, cx: float, cy: float, frame_size: int = SIZE) -> np.ndarray:
  """Boolean `[H, W]` mask of the shape centred (bounding box centre) at (cx, cy)."""
  ys, xs = np.mgrid[0:frame_size, 0:frame_size].astype(np.float32) + 0.5
  d = SHAPE_DIMENSIONS[(shape, size)]
  if shape == "circle":
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= d * d
  hw, hh = half_extent(shape, size)
  if shape == "square":
    return (np.abs(xs - cx) <= hw) & (np.abs(ys - cy) <= hh)
  # Upward triangle: apex at the top centre, base at the bottom.
  top, bottom = cy - hh, cy + hh
  frac = np.clip((ys - top) / (bottom - top), 0.0, 1.0)
  return (ys >= top) & (ys <= bottom) & (np.abs(xs - cx) <= frac * hw)


def _start_and_velocity(rng, attrs: Attributes) -> tuple[np.ndarray, np.ndarray]:
  hw, hh = half_extent(attrs.shape, attrs.size)
  speed = rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1) if attrs.direction != "still" else 0
  v = np.array(DIRECTIONS[attrs.direction], np.float32) * speed
  lo = np.array([hw, hh], np.float32)
  hi = SIZE - lo
  # Keep the wall ahead FRAMES_BEFORE_BOUNCE steps away.
  travel = np.abs(v) * FRAMES_BEFORE_BOUNCE
  lo_ok = np.where(v < 0, lo + travel, lo)
  hi_ok = np.where(v > 0, hi - travel, hi)
  start = rng.uniform(lo_ok, hi_ok).astype(np.float32)
  return start, v


def simulate(rng, attrs: Attributes) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """Object centres `[FRAMES, 2]`, per-frame velocities `[FRAMES, 2]` and the frames where it bounced."""
  hw, hh = half_extent(attrs.shape, attrs.size)
  lo, hi = np.array([hw, hh]), SIZE - np.array([hw, hh])
  p, v = _start_and_velocity(rng, attrs)
  centres, velocities, bounces = [p.copy()], [np.zeros(2, np.float32)], []
  for frame in range(1, FRAMES):
    p = p + v
    bounced = False
    for axis in range(2):
      if p[axis] < lo[axis]:
        p[axis], v[axis], bounced = 2 * lo[axis] - p[axis], -v[axis], True
      elif p[axis] > hi[axis]:
        p[axis], v[axis], bounced = 2 * hi[axis] - p[axis], -v[axis], True
    if bounced:
      bounces.append(frame)
    velocities.append(p - centres[-1])
    centres.append(p.copy())
  return np.stack(centres), np.stack(velocities).astype(np.float32), bounces


def render_audio(rng, attrs: Attributes, bounces: list[int]) -> np.ndarray:
  """`[AUDIO_SAMPLES]` float32: the colour's hum with fades, plus a white-noise click per bounce."""
  t = np.arange(AUDIO_SAMPLES, dtype=np.float64) / SAMPLE_RATE
  wave = HUM_AMPLITUDE * np.sin(2 * np.pi * PITCH_HZ[attrs.color] * t)
  fade = int(FADE_SECONDS * SAMPLE_RATE)
  ramp = np.linspace(0.0, 1.0, fade)
  wave[:fade] *= ramp
  wave[-fade:] *= ramp[::-1]
  click = int(CLICK_SECONDS * SAMPLE_RATE)
  for frame in bounces:
    start = int(round(frame / FPS * SAMPLE_RATE))
    end = min(start + click, AUDIO_SAMPLES)
    wave[start:end] += CLICK_AMPLITUDE * rng.uniform(-1.0, 1.0, end - start)
  return wave.astype(np.float32)


def render(seed: int, attrs: Attributes | None = None) -> dict[str, np.ndarray | str | list[int]]:
  """Renders clip `seed`.

  Returns a dict with `video` `[17, 64, 64, 3]` uint8, `mask` `[17, 64, 64]` bool, `flow` `[17, 64, 64, 2]`
  float32 (pixels moved since the previous frame, (dx, dy), on object pixels), `audio` `[34000]` float32 in
  [-1, 1], `caption`, the attribute strings, and `bounce_frames`.
  """
  rng = np.random.default_rng(seed)
  attrs = attrs or sample_attributes(rng)
  centres, velocities, bounces = simulate(rng, attrs)
  background = np.array(BACKGROUNDS[attrs.background], np.uint8)
  color = np.array(COLORS[attrs.color], np.uint8)
  video = np.broadcast_to(background, (FRAMES, SIZE, SIZE, 3)).copy()
  masks = np.stack([shape_mask(attrs.shape, attrs.size, cx, cy) for cx, cy in centres])
  video[masks] = color
  flow = masks[..., None] * velocities[:, None, None, :]
  return {
    "video": video,
    "mask": masks,
    "flow": flow.astype(np.float32),
    "audio": render_audio(rng, attrs, bounces),
    "caption": attrs.caption(),
    "bounce_frames": bounces,
    **dataclasses.asdict(attrs),
  }
