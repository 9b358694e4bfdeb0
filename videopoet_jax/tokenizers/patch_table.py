"""A video tokenizer made for a world of few distinct patches: each id is a row of a table of patches.

The learned tokenizer (`video.VideoTokenizer`) spends its ids on colour and coverage and never says where
an outline runs inside its 8x8 patch, so no decoder draws shapes from them (README, "What drawing the shapes
needs"). shapes_world has few distinct patches (11,281 first-frame patches in 3,000 clips), so a table of
the most frequent ones codes each patch nearly exactly in the same id format: pixels `[B, T, H, W, 3]` in
[-1, 1], T = 1 + s_t*k, map to ids `[B, 1 + k, H/p, W/p]` in [0, 2^code_bits). The first latent frame is
the first frame's p x p patches, each the nearest row (squared L2) of the `first` table; every later
latent frame is s_t frames' p x p patches, each the nearest row of the `later` table. Each latent frame is
coded alone (causal), and a still image encodes to the first latent frame of any clip that starts with it.
Tables are uint8 pixels, built from training clips by `build_tables` (no gradient training).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from videopoet_jax.tokenizers import lfq
from videopoet_jax.tokenizers.layers import depth_to_space, space_to_depth
from videopoet_jax.tokenizers.video import VideoGeometry, check_ids, check_video

# Config value of `model.kind` that selects this tokenizer.
KIND = "patch_table"
# Queries per nearest-row search (bounds the [queries, rows] distance matrix).
SEARCH_CHUNK = 1024
# Share of a batch's patches that `lookup_rows` searches for when they are not in the table exactly (about
# 11% of shapes_world's later patches are not): above it, every patch is searched.
MISS_BUDGET = 0.2
# Share of a batch's patches that may be distinct for `lookup_rows` to look each distinct patch up once (a
# batch of 32 shapes_world clips has 7-10%; a structure clip's patches are all searched for): above it,
# every patch is looked up.
DISTINCT_BUDGET = 0.15
# MISS_BUDGET of the distinct patches (rare patches are distinct: 65-80% of a batch's distinct 4-frame
# patches are not in the table, though 11% of all its 4-frame patches are not).
DISTINCT_MISS_BUDGET = 0.6


def check_geometry(geometry: VideoGeometry) -> None:
  if any(geometry.spatial_downsample):
    raise ValueError(
      "a patch table tokenizer takes its patches whole: use patch_size, not spatial_downsample"
    )


def to_latent_patches(video: jax.Array, geometry: VideoGeometry) -> tuple[jax.Array, jax.Array]:
  """`[B, T, H, W, 3]` -> `(first [B, 1, h, w, p*p*3], later [B, k, h, w, s_t*p*p*3])`: each latent
  frame's patches (`space_to_depth` per frame), its s_t frames stacked in the channels."""
  b, t, hh, ww, c = video.shape
  p, st = geometry.spatial_factor, geometry.temporal_factor
  lt, h, w = geometry.latent_shape(t, hh, ww)
  first = space_to_depth(video[:, :1], p)
  later = space_to_depth(video[:, 1:], p).reshape(b, lt - 1, st, h, w, p * p * c)
  return first, later.transpose(0, 1, 3, 4, 2, 5).reshape(b, lt - 1, h, w, st * p * p * c)


def from_latent_patches(first: jax.Array, later: jax.Array, geometry: VideoGeometry) -> jax.Array:
  """The inverse of `to_latent_patches`: -> `[B, T, H, W, 3]`."""
  b, k, h, w, _ = later.shape
  p, st = geometry.spatial_factor, geometry.temporal_factor
  frames = (
    later.reshape(b, k, h, w, st, p * p * 3).transpose(0, 1, 4, 2, 3, 5).reshape(b, k * st, h, w, p * p * 3)
  )
  return depth_to_space(jnp.concatenate([first, frames], axis=1), 1, p)


def nearest_rows(queries: jax.Array, table: jax.Array) -> jax.Array:
  """Index of each query's nearest table row (squared L2; the first on ties): `[..., D], [K, D] -> [...]`."""
  shape = queries.shape[:-1]
  q = queries.reshape(-1, queries.shape[-1]).astype(jnp.float32)
  rows = table.astype(jnp.float32)
  norms = jnp.sum(rows**2, axis=1)
  pad = -len(q) % SEARCH_CHUNK
  chunks = jnp.pad(q, ((0, pad), (0, 0))).reshape(-1, SEARCH_CHUNK, q.shape[-1])
  index = jax.lax.map(lambda c: jnp.argmin(norms - 2.0 * c @ rows.T, axis=1), chunks).reshape(-1)
  return index[: len(q)].reshape(shape).astype(jnp.int32)


def row_hashes(rows: jax.Array) -> jax.Array:
  """`[..., D]` uint8-valued -> `[...]` uint32: a fixed multiplicative hash of each row (wrapping)."""
  weights = jax.random.bits(jax.random.key(0), (rows.shape[-1],), jnp.uint32) | 1
  return jnp.sum(rows.astype(jnp.uint32) * weights, axis=-1, dtype=jnp.uint32)


def _lookup_each(q: jax.Array, q_hashes: jax.Array, table: jax.Array, miss_budget: float) -> jax.Array:
  """`lookup_rows` of `[N, D]` queries with their `row_hashes` `[N]`, each looked up on its own: the hash
  lookup, then the search of the queries whose candidate row is not exactly equal (absent, or a hash
  collision): only the misses when they are at most `miss_budget` of the queries, else all of them."""
  table_hashes = row_hashes(table)
  order = jnp.argsort(table_hashes, stable=True)
  sorted_hashes = table_hashes[order]
  slot = jnp.clip(jnp.searchsorted(sorted_hashes, q_hashes), 0, len(order) - 1)
  candidate = order[slot].astype(jnp.int32)
  hit = jnp.all(jnp.take(table, candidate, axis=0).astype(q.dtype) == q, axis=-1)
  budget = max(1, int(miss_budget * len(q)))

  def search_misses():
    (misses,) = jnp.nonzero(~hit, size=budget, fill_value=0)
    found = nearest_rows(q[misses], table)
    return candidate.at[misses].set(jnp.where(hit[misses], candidate[misses], found))

  def search_all():
    return jnp.where(hit, candidate, nearest_rows(q, table))

  return jax.lax.cond(jnp.sum(~hit) <= budget, search_misses, search_all)


def lookup_rows(queries: jax.Array, table: jax.Array) -> jax.Array:
  """`nearest_rows`, fast where most queries are table rows exactly: `[..., D], [K, D] uint8 -> [...]`.

  A batch repeats its patches (the background, an object's interior): each distinct query is looked up
  once (`_lookup_each`) when they are at most DISTINCT_BUDGET of the queries and every query equals its
  representative exactly (no two distinct queries share a hash); otherwise every query is looked up."""
  shape, table = queries.shape[:-1], jnp.asarray(table)
  q = jnp.asarray(queries).reshape(-1, queries.shape[-1])
  hashes = row_hashes(q)
  size = max(1, int(DISTINCT_BUDGET * len(q)))
  _, first_of, inverse = jnp.unique(hashes, size=size, return_index=True, return_inverse=True)
  # Each query's representative (meaningless where there are more distinct hashes than `size`: not used).
  representative_of = jnp.clip(inverse.reshape(-1), 0, size - 1)
  sorted_hashes = jnp.sort(hashes)
  distinct = 1 + jnp.sum(sorted_hashes[1:] != sorted_hashes[:-1])
  representatives = q[first_of]
  exact = (distinct <= size) & jnp.all(representatives[representative_of] == q)
  ids = jax.lax.cond(
    exact,
    lambda: _lookup_each(representatives, hashes[first_of], table, DISTINCT_MISS_BUDGET)[representative_of],
    lambda: _lookup_each(q, hashes, table, MISS_BUDGET),
  )
  return ids.reshape(shape)


class PatchTableTokenizer(nnx.Module):
  """`encode(video) -> ids`, `decode(ids) -> video`, `ids <-> codes`, as `video.VideoTokenizer`."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs | None = None):
    del rngs  # nothing random: the tables are built from clips (`build_tables`)
    self.geometry = VideoGeometry.from_config(model)
    check_geometry(self.geometry)
    rows, p, st = self.geometry.codebook_size, self.geometry.spatial_factor, self.geometry.temporal_factor
    self.first = nnx.Param(jnp.zeros((rows, p * p * 3), jnp.uint8))
    self.later = nnx.Param(jnp.zeros((rows, st * p * p * 3), jnp.uint8))

  def encode(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` in [-1, 1] -> ids `[B, t, h, w]` int32 in [0, 2^code_bits)."""
    check_video(video, self.geometry)
    pixels = jnp.round((video + 1.0) * 127.5)
    first, later = to_latent_patches(pixels, self.geometry)
    ids = [lookup_rows(first, self.first.value)]
    if later.shape[1]:
      ids.append(lookup_rows(later, self.later.value))
    return jnp.concatenate(ids, axis=1)

  def decode(self, ids: jax.Array) -> jax.Array:
    """ids `[B, t, h, w]` -> video `[B, T, H, W, 3]` in [-1, 1]."""
    check_ids(ids, self.geometry)
    first = jnp.take(self.first.value, ids[:, :1], axis=0)
    later = jnp.take(self.later.value, ids[:, 1:], axis=0)
    return from_latent_patches(first, later, self.geometry).astype(jnp.float32) / 127.5 - 1.0

  def id_pixels(self) -> jax.Array:
    """`[2^code_bits, (1 + s_t) * p*p*3]` in [-1, 1]: each id's `first` row and `later` row side by side
    (what the id draws in the first latent frame and in a later one)."""
    rows = jnp.concatenate([self.first.value, self.later.value], axis=1)
    return rows.astype(jnp.float32) / 127.5 - 1.0

  def ids_to_codes(self, ids: jax.Array) -> jax.Array:
    """ids `[B, t, h, w]` -> codes `[B, t, h, w, code_bits]` in {-1, +1} (the ids' bits, as LFQ's)."""
    return lfq.ids_to_codes(ids, self.geometry.code_bits)

  def codes_to_ids(self, codes: jax.Array) -> jax.Array:
    """codes `[B, t, h, w, code_bits]` -> ids `[B, t, h, w]`."""
    return lfq.codes_to_ids(codes)


def most_frequent_rows(rows: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
  """`([limit, D] uint8 table, distinct)`: the `limit` most frequent distinct rows of `rows [N, D]` uint8,
  most frequent first, then copies of the first row (never the nearest of anything before it)."""
  rows = np.ascontiguousarray(rows, dtype=np.uint8)
  keys = rows.view(np.dtype((np.void, rows.shape[1]))).reshape(-1)
  _, first_index, counts = np.unique(keys, return_index=True, return_counts=True)
  order = np.argsort(-counts, kind="stable")[:limit]
  table = rows[first_index[order]]
  pad = np.repeat(table[:1], limit - len(table), axis=0)
  return np.concatenate([table, pad]), len(counts)


def build_tables(videos: np.ndarray, geometry: VideoGeometry) -> tuple[dict[str, np.ndarray], dict]:
  """`({"first": [K, p*p*3], "later": [K, s_t*p*p*3]} uint8, stats)` from `[N, T, H, W, 3]` uint8 clips:
  each table the K = 2^code_bits most frequent distinct patches of its latent frames; stats counts the
  distinct patches of each (more than K: the rarest are coded by their nearest kept neighbour)."""
  check_geometry(geometry)
  first, later = to_latent_patches(np.asarray(videos, np.uint8), geometry)
  k = geometry.codebook_size
  tables, stats = {}, {}
  for name, patches in (("first", first), ("later", later)):
    tables[name], stats[f"distinct_{name}_patches"] = most_frequent_rows(
      np.asarray(patches).reshape(-1, patches.shape[-1]), k
    )
  return tables, stats
