"""Sampling settings per kind of output position (e.g. kind 0 = video ids, kind 1 = audio ids).

Each field is a `[K]` array; the output schedule's `kind[t]` picks the values used at position t. Values
are traced (changing them does not recompile); only the filter sizes in `Filters` are static.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class SamplingSettings:
  """temperature 0 = greedy; top_k 0 = off; top_p 1 = off; guidance 1 = conditional logits only."""

  temperature: jax.Array  # [K] float32, >= 0
  top_k: jax.Array  # [K] int32, >= 0
  top_p: jax.Array  # [K] float32, in (0, 1]
  guidance: jax.Array  # [K] float32 classifier-free guidance scale

  @classmethod
  def create(cls, temperature=1.0, top_k=0, top_p=1.0, guidance=1.0, num_kinds: int | None = None):
    """Scalars or per-kind sequences, broadcast to `[K]` (K = num_kinds or the longest sequence given)."""
    values = dict(temperature=temperature, top_k=top_k, top_p=top_p, guidance=guidance)
    sizes = {np.size(v) for v in values.values()} - {1}
    if len(sizes) > 1 or (num_kinds is not None and sizes - {num_kinds}):
      raise ValueError(f"per-kind settings must share one length (num_kinds={num_kinds}), got {values}")
    k = num_kinds or (sizes.pop() if sizes else 1)
    dtypes = dict(temperature=np.float32, top_k=np.int32, top_p=np.float32, guidance=np.float32)
    return cls(
      **{n: jnp.asarray(np.broadcast_to(np.asarray(v, dtypes[n]).ravel(), (k,))) for n, v in values.items()}
    )

  @property
  def num_kinds(self) -> int:
    return self.temperature.shape[0]

  def validate(self, vocab_size: int) -> None:
    """Raises ValueError unless every field is `[K]` with temperature >= 0, 0 <= top_k <= vocab_size and
    0 < top_p <= 1 (checked on host values)."""
    fields = (self.temperature, self.top_k, self.top_p, self.guidance)
    if len({f.shape for f in fields}) != 1 or self.temperature.ndim != 1:
      raise ValueError(f"settings fields must share one shape [K], got {[f.shape for f in fields]}")
    temperature, top_k, top_p = (np.asarray(f) for f in fields[:3])
    if (temperature < 0).any() or (top_k < 0).any() or (top_k > vocab_size).any():
      raise ValueError(f"need temperature >= 0 and 0 <= top_k <= {vocab_size}, got {temperature}, {top_k}")
    if (top_p <= 0).any() or (top_p > 1).any():
      raise ValueError(f"top_p must lie in (0, 1], got {top_p}")


class Filters(NamedTuple):
  """What the token choice compiles: `sample` False when every kind is greedy (no random draws), and the
  static sizes of the truncation filters (0 = filter compiled out).

  max_top_k: candidates kept by `lax.top_k` for the top-k threshold (the largest top_k of any kind).
  top_p_candidates: sorted candidates for the nucleus cut: max_top_k when every kind uses top-k (the
    nucleus then lies inside the top-k set), else the whole vocabulary (a full sort per step).
  """

  sample: bool
  max_top_k: int
  top_p_candidates: int

  @classmethod
  def for_settings(cls, settings: SamplingSettings, vocab_size: int) -> Filters:
    """The smallest static filters that implement `settings` (host values) exactly."""
    sample = bool((np.asarray(settings.temperature) > 0).any())
    top_k, top_p = np.asarray(settings.top_k), np.asarray(settings.top_p)
    max_top_k = int(top_k.max()) if sample else 0
    uses_top_p = sample and bool((top_p < 1).any())
    candidates = (max_top_k if (top_k > 0).all() else vocab_size) if uses_top_p else 0
    return cls(sample=sample, max_top_k=max_top_k, top_p_candidates=candidates)
