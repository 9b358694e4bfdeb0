"""Output schedules: what each generated position may be.

For every output position t the schedule gives the allowed global-id range `[lo[t], hi[t])` and a `kind[t]`
index into the per-kind sampling settings (settings.py), e.g. 0 for video ids, 1 for audio ids. A position
whose range holds one id (`hi == lo + 1`) is a forced structural token (e.g. <eov_o>): it is written
without sampling. The task registry builds schedules from segments, e.g. for a video of N ids then
<eov_o>: `schedule_from_segments([Segment(video_lo, video_hi, N), Segment(eov, eov + 1, 1)])`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


class Segment(NamedTuple):
  """`count` consecutive output positions whose ids lie in `[lo, hi)`, sampled with settings `kind`."""

  lo: int
  hi: int
  count: int
  kind: int = 0


@flax.struct.dataclass
class OutputSchedule:
  """Per output position: allowed ids `[lo, hi)` and sampling-settings index `kind`."""

  lo: jax.Array  # [T] int32
  hi: jax.Array  # [T] int32
  kind: jax.Array  # [T] int32

  @property
  def length(self) -> int:
    return self.lo.shape[0]

  @property
  def forced(self) -> jax.Array:
    """`[T]` bool: positions whose single allowed id is written without sampling."""
    return self.hi == self.lo + 1

  def validate(self, vocab_size: int, num_kinds: int) -> None:
    """Raises ValueError unless lo/hi/kind are `[T]` (T >= 1) with 0 <= lo < hi <= vocab_size and
    0 <= kind < num_kinds (checked on host values)."""
    shapes = {a.shape for a in (self.lo, self.hi, self.kind)}
    if len(shapes) != 1 or len(self.lo.shape) != 1 or self.lo.shape[0] < 1:
      raise ValueError(f"schedule lo/hi/kind must share one shape [T], T >= 1, got {shapes}")
    lo, hi, kind = (np.asarray(a) for a in (self.lo, self.hi, self.kind))
    if (lo < 0).any() or (hi <= lo).any() or (hi > vocab_size).any():
      raise ValueError(f"schedule ranges must satisfy 0 <= lo < hi <= {vocab_size}")
    if (kind < 0).any() or (kind >= num_kinds).any():
      raise ValueError(f"schedule kinds must lie in [0, {num_kinds}), got {sorted(set(kind.tolist()))}")


def schedule_from_segments(segments: Sequence[Segment | tuple]) -> OutputSchedule:
  """Concatenates segments `(lo, hi, count[, kind])` into an `OutputSchedule` of `T = sum(count)`."""
  segments = [Segment(*s) for s in segments]
  if not segments or any(s.count < 1 or s.hi <= s.lo or s.lo < 0 for s in segments):
    raise ValueError(f"segments must be non-empty with count >= 1 and 0 <= lo < hi, got {segments}")
  repeat = lambda field: jnp.asarray(
    np.repeat([getattr(s, field) for s in segments], [s.count for s in segments])
  )
  return OutputSchedule(
    lo=repeat("lo").astype(jnp.int32),
    hi=repeat("hi").astype(jnp.int32),
    kind=repeat("kind").astype(jnp.int32),
  )
