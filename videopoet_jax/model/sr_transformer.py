"""VideoPoet's super-resolution transformer: bidirectional, in the video tokenizer's token space.

Input: the high-resolution ids `[B, T, H, W]` with some hidden (`hidden [B, T, H, W]` bool: those positions
get a learned mask embedding instead of their id's), the low-resolution ids `[B, T, H/2, W/2]` and text ids
`[B, L]` (0 = padding). Each block runs self-attention inside three axial windows (`model.windows`: e.g.
vertical `(1, H, 4)`, horizontal `(1, 8, W)`, temporal `(T, 8, 8)`), cross-attention from a window of the
high-resolution grid (`model.cross_window`) to the window of the low-resolution grid at the same place and
half the spatial size, cross-attention to the text, and a SwiGLU MLP, each pre-norm and residual. A dropped
condition (`keep_text`, `keep_low_res` `[B]` bool False) is replaced by a learned null token, so guidance
can compare with and without it (decoding/masked_sampler.py). With `model.low_res_input` every
high-resolution position also starts from the embedding of the low-resolution token it lies in (nearest 2x;
not in the paper, which has the cross-attention only), so where the object is does not have to be found
through attention first.

Token factorization (`model.factors` = k): an id of `code_bits` bits is k sub-ids of `code_bits / k` bits;
the embedding sums k embeddings and the output has k heads, `[B, T, H, W, k, 2**(code_bits / k)]` logits
(VideoPoet: 18 bits as 2 x 9 for its 262,144-id vocabulary).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from videopoet_jax.model import windows as windows_lib
from videopoet_jax.model.transformer import MLP, REMAT_POLICIES, RMSNorm


def split_factors(ids: jax.Array, code_bits: int, factors: int) -> jax.Array:
  """`[...]` ids of `code_bits` bits -> `[..., factors]` sub-ids of `code_bits / factors` bits (lowest
  first); `merge_factors` inverts it."""
  bits = code_bits // factors
  shifts = jnp.arange(factors, dtype=ids.dtype) * bits
  return (ids[..., None] >> shifts) & ((1 << bits) - 1)


def merge_factors(sub_ids: jax.Array, code_bits: int, factors: int) -> jax.Array:
  """`[..., factors]` sub-ids -> `[...]` ids (`split_factors`' inverse)."""
  shifts = jnp.arange(factors, dtype=sub_ids.dtype) * (code_bits // factors)
  return jnp.sum(sub_ids << shifts, axis=-1)


def low_res_grid(grid) -> tuple[int, int, int]:
  """The low-resolution id grid `(T, H/2, W/2)` of a high-resolution grid `(T, H, W)`."""
  t, h, w = grid
  return t, h // 2, w // 2


def check_model(model: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming the first inconsistent setting of an SR model config."""
  t, h, w = model.grid
  if model.code_bits % model.factors:
    raise ValueError(f"model.factors={model.factors} must divide model.code_bits={model.code_bits}")
  if h % 2 or w % 2:
    raise ValueError(
      f"model.grid {tuple(model.grid)}: the low-resolution grid is half of it, sides must be even"
    )
  for window in (*model.windows, model.cross_window):
    windows_lib.check_window((t, h, w), window)
  if model.get("remat", "none") not in ("none", *REMAT_POLICIES):
    raise ValueError(f"unknown remat policy {model.remat!r}: none, {', '.join(REMAT_POLICIES)}")
  wt, wh, ww = model.cross_window
  if wh % 2 or ww % 2:
    raise ValueError(
      f"model.cross_window {tuple(model.cross_window)} needs even spatial sides (halved for LR)"
    )


def build(config: ml_collections.ConfigDict, seed: int = 0) -> SRTransformer:
  """The SR transformer of a run config (`config.model`), initialized from `seed`."""
  return SRTransformer(config.model, rngs=nnx.Rngs(seed))


class ContextAttention(nnx.Module):
  """Multi-head attention of `[N, Q, W]` queries over `[N, K, W]` context (itself for self-attention), keys
  masked by `[N, K]` bool; no position encoding (the embeddings carry it)."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.heads, self.head_dim = model.heads, model.head_dim
    inner = model.heads * model.head_dim
    linear = lambda a, b: nnx.Linear(a, b, use_bias=False, rngs=rngs)  # noqa: E731
    self.query = linear(model.width, inner)
    self.key = linear(model.width, inner)
    self.value = linear(model.width, inner)
    self.out = linear(inner, model.width)

  def __call__(self, x: jax.Array, context: jax.Array, key_valid: jax.Array | None = None) -> jax.Array:
    split = lambda t: t.reshape(*t.shape[:2], self.heads, self.head_dim)  # noqa: E731
    mask = None if key_valid is None else key_valid[:, None, None, :]
    q, k, v = split(self.query(x)), split(self.key(context)), split(self.value(context))
    out = jax.nn.dot_product_attention(q, k, v, mask=mask)
    return self.out(out.reshape(*out.shape[:2], -1))


class SRBlock(nnx.Module):
  """Axial-window self-attention (three windows), windowed cross-attention to the low-resolution tokens,
  cross-attention to the text, MLP; each pre-RMSNorm and residual, on `[B, T, H, W, width]`."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.windows = tuple(tuple(w) for w in model.windows)
    self.cross_window = tuple(model.cross_window)
    norm = lambda: RMSNorm(model.width, rngs=rngs)  # noqa: E731
    self.self_norms = nnx.List([norm() for _ in self.windows])
    self.self_attention = nnx.List([ContextAttention(model, rngs=rngs) for _ in self.windows])
    self.low_res_norm, self.low_res_attention = norm(), ContextAttention(model, rngs=rngs)
    self.text_norm, self.text_attention = norm(), ContextAttention(model, rngs=rngs)
    self.mlp_norm, self.mlp = norm(), MLP(model, rngs=rngs)

  def __call__(self, x, low_res, text, text_valid):
    """x `[B, T, H, W, D]`, low_res `[B, T, H/2, W/2, D]`, text `[B, L, D]`, text_valid `[B, L]` bool."""
    grid = x.shape[:4]
    for window, norm, attention in zip(self.windows, self.self_norms, self.self_attention, strict=True):
      parts = windows_lib.partition(norm(x), window)
      x = x + windows_lib.merge(attention(parts, parts), window, grid)
    wt, wh, ww = self.cross_window
    queries = windows_lib.partition(self.low_res_norm(x), self.cross_window)
    context = windows_lib.partition(low_res, (wt, wh // 2, ww // 2))
    x = x + windows_lib.merge(self.low_res_attention(queries, context), self.cross_window, grid)
    flat = self.text_norm(x).reshape(grid[0], -1, x.shape[-1])
    x = x + self.text_attention(flat, text, text_valid).reshape(x.shape)
    return x + self.mlp(self.mlp_norm(x))


class SRTransformer(nnx.Module):
  """`(ids, hidden, low_res_ids, text_ids, keep_text, keep_low_res)` -> `[B, T, H, W, factors, 2**(bits /
  factors)]` logits (shapes in the module docstring)."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    check_model(model)
    self.code_bits, self.factors, self.grid = model.code_bits, model.factors, tuple(model.grid)
    self.remat = model.get("remat", "none")
    self.low_res_input = model.get("low_res_input", False)
    sub_vocab = 2 ** (model.code_bits // model.factors)
    embed = lambda n: nnx.Embed(n, model.width, rngs=rngs)  # noqa: E731
    self.id_embeddings = nnx.List([embed(sub_vocab) for _ in range(model.factors)])
    self.low_res_embeddings = nnx.List([embed(sub_vocab) for _ in range(model.factors)])
    t, h, w = self.grid
    self.time, self.rows, self.cols = embed(t), embed(h), embed(w)
    self.text_embedding = embed(model.text_vocab)
    # Learned stand-ins: a hidden id, a dropped low-resolution clip, a dropped text.
    self.mask = nnx.Param(jnp.zeros((model.width,)))
    self.null_low_res = nnx.Param(jnp.zeros((model.width,)))
    self.null_text = nnx.Param(jnp.zeros((model.width,)))
    self.blocks = nnx.List([SRBlock(model, rngs=rngs) for _ in range(model.depth)])
    self.norm_out = RMSNorm(model.width, rngs=rngs)
    self.heads = nnx.List([nnx.Linear(model.width, sub_vocab, rngs=rngs) for _ in range(model.factors)])

  def _embed_ids(self, ids: jax.Array, tables) -> jax.Array:
    sub_ids = split_factors(ids, self.code_bits, self.factors)
    return sum(table(sub_ids[..., j]) for j, table in enumerate(tables))

  def _positions(self, t: int, h: int, w: int) -> jax.Array:
    """`[t, h, w, D]` position embeddings; a half-size grid samples every other row and column."""
    rows = self.rows(jnp.arange(h) * (self.grid[1] // h))
    cols = self.cols(jnp.arange(w) * (self.grid[2] // w))
    return self.time(jnp.arange(t))[:, None, None] + rows[None, :, None] + cols[None, None, :]

  def __call__(self, ids, hidden, low_res_ids, text_ids, keep_text, keep_low_res):
    b, t, h, w = ids.shape
    if (t, h, w) != self.grid or low_res_ids.shape != (b, *low_res_grid(self.grid)):
      raise ValueError(
        f"ids {ids.shape} and low_res_ids {low_res_ids.shape} must be [B, {self.grid}] and its half size"
      )
    x = jnp.where(hidden[..., None], self.mask.value, self._embed_ids(ids, self.id_embeddings))
    x = x + self._positions(t, h, w)
    low_res = self._embed_ids(low_res_ids, self.low_res_embeddings)
    low_res = jnp.where(keep_low_res[:, None, None, None, None], low_res, self.null_low_res.value)
    if self.low_res_input:  # each position also starts from its low-resolution token's embedding
      x = x + jnp.repeat(jnp.repeat(low_res, 2, axis=2), 2, axis=3)
    low_res = low_res + self._positions(t, h // 2, w // 2)
    text_valid = (text_ids > 0) & keep_text[:, None]
    # A dropped (or empty) text leaves one null key to attend to.
    text = jnp.concatenate(
      [jnp.broadcast_to(self.null_text.value, (b, 1, x.shape[-1])), self.text_embedding(text_ids)], axis=1
    )
    text_valid = jnp.concatenate([~jnp.any(text_valid, axis=1, keepdims=True), text_valid], axis=1)
    run = lambda block, x: block(x, low_res, text, text_valid)  # noqa: E731
    if self.remat != "none":  # blocks recomputed in the backward pass (model.remat)
      run = nnx.remat(run, policy=REMAT_POLICIES[self.remat])
    for block in self.blocks:
      x = run(block, x)
    x = self.norm_out(x)
    return jnp.stack([head(x) for head in self.heads], axis=-2)
