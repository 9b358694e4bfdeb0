"""The procedural audio-visual world: one (or two) coloured shapes moving on a flat background, humming.

Every clip is a pure function of its seed (and of the world's options: number of objects, withheld
attribute combinations, the share of clips whose objects turn after the first second). The palette, sizes,
pitches and caption grammar below are part of the evaluation contract: change them and the per-task scores
stop meaning anything.
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
MOVES = tuple(d for d in DIRECTIONS if d != "still")
# A turning clip's objects take a new direction at the first frame after the first second (no bounce comes
# before it), with room for TURN_ROOM_FRAMES frames in it. A continuation conditioned on the first second
# then sees the footage follow a new prompt (the caption of what follows, `next_caption`).
TURN_FRAME = 1 + FPS
TURN_ROOM_FRAMES = 4
# Whether a clip turns, and which way, is drawn from its own stream of the seed: a clip that does not turn is
# the same clip it is without turns.
TURN_STREAM = 1
HUM_AMPLITUDE = 0.3
FADE_SECONDS = 0.010
CLICK_AMPLITUDE = 0.5
CLICK_SECONDS = 0.010
# Audio id frames after a bounce's own that `click_windows` counts as its click's.
CLICK_FRAMES_AFTER = 4
# Attribute names an object has (the background is shared by all objects of a clip).
OBJECT_ATTRIBUTES = ("shape", "size", "color", "direction")
ATTRIBUTE_VALUES = {
  "shape": SHAPES,
  "size": SIZES,
  "color": tuple(COLORS),
  "direction": tuple(DIRECTIONS),
  "background": tuple(BACKGROUNDS),
}
MAX_OBJECTS = 2


@dataclasses.dataclass(frozen=True)
class Attributes:
  shape: str
  size: str
  color: str
  direction: str
  background: str
  # The direction taken at TURN_FRAME (one of MOVES), None for an object that does not turn.
  then: str | None = None

  def caption(self) -> str:
    obj = f"a {self.size} {self.color} {self.shape}"
    motion = f"moves {self.direction}" if self.direction != "still" else "stays still"
    if self.then is not None:
      motion += f", then {'' if self.direction != 'still' else 'moves '}{self.then}"
    return f"{obj} {motion} on a {self.background} background"

  def after_turn(self) -> Attributes:
    """The attributes of the footage from TURN_FRAME on (the same without a turn)."""
    return dataclasses.replace(self, direction=self.then or self.direction, then=None)


def caption(objects: list[Attributes]) -> str:
  """The caption of a clip: objects joined by "and", then the (shared) background of the first."""
  if len(objects) == 1:
    return objects[0].caption()
  phrases = [o.caption().rsplit(" on a ", 1)[0] for o in objects]
  return f"{' and '.join(phrases)} on a {objects[0].background} background"


def parse_combination(text: str) -> dict[str, str]:
  """Parses an attribute combination such as "color=red,shape=triangle" (values checked)."""
  combination = {}
  for item in text.split(","):
    key, _, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if key not in ATTRIBUTE_VALUES or value not in ATTRIBUTE_VALUES[key]:
      raise ValueError(f"bad attribute combination {text!r}: {item!r} is not one of {ATTRIBUTE_VALUES}")
    combination[key] = value
  return combination


def matches(attrs: Attributes, combinations: tuple[str, ...]) -> bool:
  """Whether `attrs` has every attribute of at least one of `combinations` ("color=red,shape=circle")."""
  for text in combinations:
    if all(getattr(attrs, k) == v for k, v in parse_combination(text).items()):
      return True
  return False


def sample_attributes(
  rng: np.random.Generator, withheld: tuple[str, ...] = (), only_withheld: bool = False
) -> Attributes:
  """Random attributes; with `withheld`, redrawn until they avoid (or, with `only_withheld`, hit) them."""
  while True:
    attrs = Attributes(
      shape=str(rng.choice(SHAPES)),
      size=str(rng.choice(SIZES)),
      color=str(rng.choice(list(COLORS))),
      direction=str(rng.choice(list(DIRECTIONS))),
      background=str(rng.choice(list(BACKGROUNDS))),
    )
    if not withheld or matches(attrs, withheld) == only_withheld:
      return attrs


def half_extent(shape: str, size: str) -> tuple[float, float]:
  """Half width and half height of the shape's bounding box, in pixels."""
  d = SHAPE_DIMENSIONS[(shape, size)]
  if shape == "circle":
    return float(d), float(d)
  if shape == "square":
    return d / 2, d / 2
  return d / 2, d * np.sqrt(3) / 4


def shape_mask(
  shape: str, size: str, cx: float, cy: float, frame_size: int = SIZE, scale: int = 1
) -> np.ndarray:
  """Boolean `[frame_size, frame_size]` mask of the shape centred (bounding box centre) at (cx, cy), in the
  world's pixels; `scale` samples the same plane `scale` times as densely per axis (pixel centres at
  `(i + 0.5) / scale`): a `frame_size = SIZE * scale` frame shows the clip at a higher resolution."""
  ys, xs = (np.mgrid[0:frame_size, 0:frame_size].astype(np.float32) + 0.5) / scale
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


def _turn(turn_rng, attrs: Attributes, p, v, lo, hi) -> tuple[str | None, np.ndarray]:
  """`(new direction, new velocity)` at TURN_FRAME for an object at `p` moving at `v` in box [lo, hi]: a
  direction of MOVES other than its own with TURN_ROOM_FRAMES frames of room ahead, at its speed (a still
  object gets a random one); `(None, v)` when no direction has the room."""
  speed = float(np.abs(v).max()) or float(turn_rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
  room = {
    d: min((hi - p if s > 0 else p - lo)[axis] for axis, s in enumerate(DIRECTIONS[d]) if s)
    for d in MOVES
    if d != attrs.direction
  }
  options = [d for d, free in room.items() if free >= TURN_ROOM_FRAMES * speed]
  if not options:
    return None, v
  then = options[int(turn_rng.integers(len(options)))]
  return then, np.array(DIRECTIONS[then], np.float32) * speed


def simulate(rng, attrs: Attributes, turn_rng=None) -> tuple[np.ndarray, np.ndarray, list[int], str | None]:
  """Object centres `[FRAMES, 2]`, per-frame velocities `[FRAMES, 2]`, the frames where it bounced, and the
  direction it turned to at TURN_FRAME (None: no turn; only with `turn_rng`, see `_turn`)."""
  hw, hh = half_extent(attrs.shape, attrs.size)
  lo, hi = np.array([hw, hh]), SIZE - np.array([hw, hh])
  p, v = _start_and_velocity(rng, attrs)
  then = None
  centres, velocities, bounces = [p.copy()], [np.zeros(2, np.float32)], []
  for frame in range(1, FRAMES):
    if frame == TURN_FRAME and turn_rng is not None:
      then, v = _turn(turn_rng, attrs, p, v, lo, hi)
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
  return np.stack(centres), np.stack(velocities).astype(np.float32), bounces, then


def click_start(frame: int) -> int:
  """First audio sample of the click of a bounce at video frame `frame`."""
  return int(round(frame / FPS * SAMPLE_RATE))


def click_windows(bounce_frames, audio_frames: int, frames: int = FRAMES) -> list[slice]:
  """Each bounce click's audio id frames, for audio tokenized into `audio_frames` frames per clip of `frames`
  video frames: from one frame before the bounce's own to CLICK_FRAMES_AFTER after it (the codec's frames
  that hear the click)."""
  per_video_frame = audio_frames / frames
  windows = []
  for bounce in bounce_frames:
    at = int(round(bounce * per_video_frame))
    windows.append(slice(max(0, at - 1), min(audio_frames, at + CLICK_FRAMES_AFTER + 1)))
  return windows


def render_audio(rng, colors: str | list[str], bounces: list[int]) -> np.ndarray:
  """`[AUDIO_SAMPLES]` float32 in [-1, 1]: each colour's hum with fades, plus a noise click per bounce."""
  colors = [colors] if isinstance(colors, str) else colors
  t = np.arange(AUDIO_SAMPLES, dtype=np.float64) / SAMPLE_RATE
  wave = sum(HUM_AMPLITUDE * np.sin(2 * np.pi * PITCH_HZ[c] * t) for c in colors)
  fade = int(FADE_SECONDS * SAMPLE_RATE)
  ramp = np.linspace(0.0, 1.0, fade)
  wave[:fade] *= ramp
  wave[-fade:] *= ramp[::-1]
  click = int(CLICK_SECONDS * SAMPLE_RATE)
  for frame in bounces:
    start = click_start(frame)
    end = min(start + click, AUDIO_SAMPLES)
    wave[start:end] += CLICK_AMPLITUDE * rng.uniform(-1.0, 1.0, end - start)
  return np.clip(wave, -1.0, 1.0).astype(np.float32)


def render(
  seed: int,
  attrs: Attributes | list[Attributes] | None = None,
  num_objects: int = 1,
  withheld: tuple[str, ...] = (),
  only_withheld: bool = False,
  turn_fraction: float = 0.0,
  scale: int = 1,
) -> dict[str, np.ndarray | str | list]:
  """Renders clip `seed`.

  Args:
    seed: the clip's seed; the clip is a pure function of it and of the other arguments.
    attrs: fixed attributes (one Attributes per object) instead of random ones.
    num_objects: 1 or 2 objects; all share the first object's background, later objects are drawn on top.
    withheld: attribute combinations ("color=red,shape=triangle") no object may have ...
    only_withheld: ... or, when True, that every object must have one of.
    turn_fraction: the share of seeds whose objects turn at TURN_FRAME (drawn from the seed's TURN_STREAM;
      the other clips are exactly the clips rendered without turns).
    scale: pixels per world pixel along each axis: the same clip (objects, motion, sound, caption) at
      `SIZE * scale` pixels square (the super-resolution stage's ground truth at 2).

  Returns:
    A dict with `video` `[17, S, S, 3]` uint8 (S = 64 * scale), `mask` `[17, S, S]` bool (any object),
    `labels` `[17, S, S]` uint8 (0 background, k = object k on top there), `flow` `[17, S, S, 2]` float32
    (frame pixels the visible object moved since the previous frame, (dx, dy), on object pixels), `audio`
    `[34000]` float32 in [-1, 1], `caption` (of the whole clip: "... moves left, then up ..." where an
    object turns),
    `next_caption` (of the footage from TURN_FRAME on; the caption where nothing turns), the first object's
    attribute strings (`then`: its new direction or None), `objects` (a list of attribute dicts), and
    `bounce_frames` (sorted frames where any object bounced).
  """
  if not 1 <= num_objects <= MAX_OBJECTS:
    raise ValueError(f"num_objects must be in [1, {MAX_OBJECTS}], got {num_objects}")
  rng = np.random.default_rng(seed)
  if attrs is None:
    objects = [sample_attributes(rng, withheld, only_withheld) for _ in range(num_objects)]
  else:
    objects = [attrs] if isinstance(attrs, Attributes) else list(attrs)
  objects = [dataclasses.replace(o, background=objects[0].background) for o in objects]
  if scale < 1 or int(scale) != scale:
    raise ValueError(f"scale must be a positive integer, got {scale}")
  size = SIZE * scale
  background = np.array(BACKGROUNDS[objects[0].background], np.uint8)
  video = np.broadcast_to(background, (FRAMES, size, size, 3)).copy()
  labels = np.zeros((FRAMES, size, size), np.uint8)
  flow = np.zeros((FRAMES, size, size, 2), np.float32)
  turn_rng = np.random.default_rng([seed, TURN_STREAM])
  turn_rng = turn_rng if turn_fraction > 0 and turn_rng.random() < turn_fraction else None
  bounces = set()
  for k, attrs_k in enumerate(objects, start=1):
    centres, velocities, bounces_k, then = simulate(rng, attrs_k, turn_rng)
    objects[k - 1] = attrs_k = dataclasses.replace(attrs_k, then=then)
    bounces.update(bounces_k)
    masks = np.stack([shape_mask(attrs_k.shape, attrs_k.size, cx, cy, size, scale) for cx, cy in centres])
    video[masks] = np.array(COLORS[attrs_k.color], np.uint8)
    labels[masks] = k
    flow = np.where(masks[..., None], scale * velocities[:, None, None, :], flow)
  bounces = sorted(bounces)
  return {
    "video": video,
    "mask": labels > 0,
    "labels": labels,
    "flow": flow.astype(np.float32),
    "audio": render_audio(rng, [o.color for o in objects], bounces),
    "caption": caption(objects),
    "next_caption": caption([o.after_turn() for o in objects]),
    "bounce_frames": bounces,
    "objects": [dataclasses.asdict(o) for o in objects],
    **dataclasses.asdict(objects[0]),
  }
