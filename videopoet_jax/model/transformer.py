"""Decoder-only prefix-LM transformer: RoPE, pre-RMSNorm, SwiGLU, optional tied embeddings, KV cache.

Tokens `[B, S]` int32 global ids (see videopoet_jax/vocab.py) with per-example prefix lengths `[B]`:
position i attends to j when j <= i or j < prefix_length (bidirectional over the prefix, causal after it);
padding is handled by the caller's loss mask. Parameters carry logical axis names ("vocab", "embed",
"heads", "kv", "mlp") for sharding rules.

Sampling (videopoet_jax/decoding) runs `extend` over the whole prefix (prefill), then one token at a time
with a `KVCache` (model/kv_cache.py: per layer k and v `[B, heads, max_len, head_dim]`); the result equals
recomputing the whole sequence (tested). `key_valid [B, S]` (default all True) hides keys from every
query: sampling left-pads prompts of different lengths with `<pad>` and hides them, so a padded prompt
computes exactly what the unpadded one does (RoPE is relative).

External text embeddings (e.g. T5, `model.text_embedding_dim > 0`) enter through a linear projection: the
prefix positions holding `<emb>` placeholders get the projected row `text_slots[b, s]` of
`text_embedding [B, L, D]` instead of a token embedding. Activations carry logical sharding constraints
(ACTIVATION_AXES, LOGITS_AXES), applied when a mesh and logical axis rules are in context.
The training loss is computed in chunks of `model.logits_chunk` positions (`token_losses`), so the
`[B, S, vocab]` logits never exist at once.

With `model.video_grid = (rows, cols)`, video tokens also get learned row and column embeddings of their
cell in the latent frame (`VideoPositions`): with 1D RoPE alone the model infers where a token sits in the
frame from the sequence. Tried against the bundled model's weak left/right motion, where they stayed near
zero (README, "Where direction fails").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from videopoet_jax import sharding
from videopoet_jax.model import attention_kernels
from videopoet_jax.model.kv_cache import KVCache

# Logical axes of the residual stream `[B, S, W]` and of logits `[B, S, V]` (activation names are separate
# from the parameters' so the rules can place them differently, as in MaxText).
ACTIVATION_AXES = ("activation_batch", "activation_length", "activation_embed")
LOGITS_AXES = ("activation_batch", "activation_length", "activation_vocab")
# jax.checkpoint policies by `model.remat` name ("none": keep every activation).
REMAT_POLICIES = {
  "full": jax.checkpoint_policies.nothing_saveable,
  "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
# `model.attention`: "dense" materializes `[B, H, S, S]` logits (the reference, and the decode path);
# full-sequence passes run without them: "chunked" with `chunked_attention` (`model.attention_chunk` keys at a
# time, any backend), "cudnn" and "splash" on fused kernels (`attention_kernels`: GPU, TPU).
ATTENTION_IMPLEMENTATIONS = ("dense", "chunked", *attention_kernels.KERNELS)
# Attention logits of masked pairs.
MASKED_LOGIT = -1e30
# Config keys that shape only `VideoPositions` (a warm start may add them to a model trained without).
VIDEO_POSITION_KEYS = ("model.video_grid", "model.video_cell_ids")
RMS_EPSILON = 1e-6


def prefix_lm_mask(
  query_positions: jax.Array, key_positions: jax.Array, prefix_length: jax.Array
) -> jax.Array:
  """`[B, Q, K]` bool: query i sees key j iff j <= i or j < prefix_length (per example `[B]`)."""
  causal = key_positions[None, None, :] <= query_positions[None, :, None]
  in_prefix = key_positions[None, None, :] < prefix_length[:, None, None]
  return causal | in_prefix


def chunked_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  positions: jax.Array,
  prefix_length: jax.Array,
  key_valid: jax.Array | None,
  chunk: int,
) -> jax.Array:
  """Prefix-LM attention without the `[Q, K]` logits: keys in chunks of `chunk` with an online softmax
  (running max and sum), each chunk recomputed in the backward pass. q `[B, H, S, D]`, k/v `[B, H, S, D]`
  at the same `positions [S]`, `prefix_length [B]`, `key_valid [B, S]` or None -> `[B, H, S, D]`; equal to
  the dense softmax up to float rounding. Memory per layer: `[B, H, S, chunk]` logits, not `[B, H, S, S]`."""
  b, h, s, d = k.shape
  pad = -s % chunk
  valid = jnp.ones((b, s), bool) if key_valid is None else key_valid
  pad_keys = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, pad), (0, 0)))
  num = (s + pad) // chunk
  k_chunks = pad_keys(k).reshape(b, h, num, chunk, d).transpose(2, 0, 1, 3, 4)
  v_chunks = pad_keys(v).reshape(b, h, num, chunk, d).transpose(2, 0, 1, 3, 4)
  key_pos = jnp.pad(positions, (0, pad), constant_values=jnp.iinfo(jnp.int32).max).reshape(num, chunk)
  valid = jnp.pad(valid, ((0, 0), (0, pad))).reshape(b, num, chunk).transpose(1, 0, 2)
  scale = 1.0 / jnp.sqrt(jnp.float32(d))

  @jax.checkpoint
  def step(carry, chunk_args):
    running_max, total, acc = carry
    kc, vc, kp, kv = chunk_args
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, kc).astype(jnp.float32) * scale
    seen = prefix_lm_mask(positions, kp, prefix_length) & kv[:, None, :]  # [B, Q, C]
    logits = jnp.where(seen[:, None], logits, MASKED_LOGIT)
    # Chunk padding weighs nothing, even in a row with no key to see (where dense attention is uniform).
    logits = jnp.where(kp < s, logits, -jnp.inf)
    new_max = jnp.maximum(running_max, logits.max(-1))
    correction = jnp.exp(running_max - new_max)
    weights = jnp.exp(logits - new_max[..., None])
    total = total * correction + weights.sum(-1)
    acc = acc * correction[..., None] + jnp.einsum("bhqk,bhkd->bhqd", weights.astype(vc.dtype), vc)
    return (new_max, total, acc), None

  start = (
    jnp.full((b, h, s), MASKED_LOGIT, jnp.float32),
    jnp.zeros((b, h, s), jnp.float32),
    jnp.zeros((b, h, s, d), jnp.float32),
  )
  (_, total, acc), _ = jax.lax.scan(step, start, (k_chunks, v_chunks, key_pos, valid))
  return (acc / total[..., None]).astype(v.dtype)


def rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
  """Rotary embedding of `[B, S, H, D]` at integer positions `[S]` (D even; pairs (i, i + D/2))."""
  half = x.shape[-1] // 2
  frequencies = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions[:, None].astype(jnp.float32) * frequencies[None, :]  # [S, D/2]
  sin, cos = jnp.sin(angles)[None, :, None, :], jnp.cos(angles)[None, :, None, :]
  first, second = x[..., :half], x[..., half:]
  return jnp.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1).astype(x.dtype)


def logical_axes(*names: str) -> dict:
  """Variable metadata naming a parameter's logical axes; the LM trainer maps them onto the mesh with the
  config's rules (nothing is placed at creation)."""
  return {"out_sharding": names, "eager_sharding": False}


def _dense(cin: int, cout: int, axes: tuple[str, str], model: ml_collections.ConfigDict, rngs) -> nnx.Linear:
  return nnx.Linear(
    cin,
    cout,
    use_bias=False,
    dtype=jnp.dtype(model.dtype),
    param_dtype=jnp.dtype(model.param_dtype),
    kernel_metadata=logical_axes(*axes),
    rngs=rngs,
  )


class RMSNorm(nnx.Module):
  def __init__(self, width: int, param_dtype: str = "float32", *, rngs):
    del rngs
    self.scale = nnx.Param(jnp.ones((width,), jnp.dtype(param_dtype)), **logical_axes("embed"))

  def __call__(self, x: jax.Array) -> jax.Array:
    variance = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return (x * jax.lax.rsqrt(variance + RMS_EPSILON)).astype(x.dtype) * self.scale.value


class Attention(nnx.Module):
  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.heads, self.head_dim, self.rope_base = model.heads, model.head_dim, model.rope_base
    self.implementation = model.get("attention", "dense")
    if self.implementation not in ATTENTION_IMPLEMENTATIONS:
      raise ValueError(f"unknown attention {self.implementation!r}; known: {ATTENTION_IMPLEMENTATIONS}")
    self.chunk = attention_kernels.attention_chunk(model)
    if self.implementation == "splash":
      attention_kernels.check_splash_tile(self.chunk)
    inner = model.heads * model.head_dim
    self.query = _dense(model.width, inner, ("embed", "heads"), model, rngs)
    self.key = _dense(model.width, inner, ("embed", "heads"), model, rngs)
    self.value = _dense(model.width, inner, ("embed", "heads"), model, rngs)
    self.out = _dense(inner, model.width, ("heads", "embed"), model, rngs)

  def project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`[B, S, W]` -> rotated q, k and v, each `[B, S, H, D]`."""
    b, s, _ = x.shape
    split = lambda t: t.reshape(b, s, self.heads, self.head_dim)
    q = rope(split(self.query(x)), positions, self.rope_base)
    k = rope(split(self.key(x)), positions, self.rope_base)
    return q, k, split(self.value(x))

  def attend_sequence(self, q, k, v, positions, prefix_length, key_valid) -> jax.Array:
    """As `attend` over a whole sequence at `positions` 0 .. S-1 (no cache), without `[B, H, S, S]` logits:
    q, k, v `[B, S, H, D]` -> `[B, S, W]`. The fused kernels take no key mask: with `key_valid` (left-padded
    prompts) the chunked pass runs."""
    if self.implementation == "chunked" or key_valid is not None:
      heads_major = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731
      out = chunked_attention(*map(heads_major, (q, k, v)), positions, prefix_length, key_valid, self.chunk)
      out = heads_major(out)
    elif self.implementation == "cudnn":
      out = attention_kernels.dot_product_prefix_attention(q, k, v, prefix_length)
    else:
      out = attention_kernels.splash_prefix_attention(q, k, v, prefix_length, self.chunk)
    return self.out(out.reshape(*out.shape[:2], -1))

  def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """q `[B, Q, H, D]`, k/v `[B, H, K, D]` (heads-major, as cached), mask `[B, Q, K]` -> `[B, Q, W]`."""
    # Heads-major q too: with batch 1, XLA on CPU otherwise transposed the whole cache for the dot.
    q = q.transpose(0, 2, 1, 3)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / jnp.sqrt(self.head_dim).astype(q.dtype)
    logits = jnp.where(mask[:, None], logits, MASKED_LOGIT)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights, v).transpose(0, 2, 1, 3)
    return self.out(out.reshape(*out.shape[:2], -1))


def video_cells(tokens: jax.Array, positions: jax.Array, prefix_length: jax.Array, cell_ids) -> jax.Array:
  """Cell index in its latent frame (row-major) of each video token of `tokens [B, S]` at `positions [S]`,
  before the modulo: a token is a cell when its id is in one of `cell_ids`' [start, stop) ranges (video ids
  and `<mask>`), and its index is its place in the run of consecutive cells it belongs to. Output tokens
  (positions >= `prefix_length [B]`) count from `prefix_length`, the output's first id (a video output is
  one run of cells, after the begin token that ends the prefix): so a decoding step, which sees one token,
  numbers it as the full sequence does. Returns `[B, S]` int32, -1 where a token is not a cell."""
  is_cell = jnp.zeros(tokens.shape, bool)
  for start, stop in cell_ids:
    is_cell |= (tokens >= start) & (tokens < stop)
  positions = jnp.broadcast_to(positions, tokens.shape)
  last_other = jax.lax.cummax(jnp.where(is_cell, -1, positions), axis=1)
  output_start = jnp.where(positions >= prefix_length[:, None], prefix_length[:, None] - 1, -1)
  index = positions - jnp.maximum(last_other, output_start) - 1
  return jnp.where(is_cell, index, -1)


class VideoPositions(nnx.Module):
  """Learned row and column embeddings `[rows, W]`, `[cols, W]` of the video tokens' cells
  (`model.video_grid`, `model.video_cell_ids`); zero at init, so a model warm-started from one without them
  computes at first exactly what it did."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    del rngs
    self.grid = tuple(model.video_grid)
    self.cell_ids = tuple(tuple(r) for r in model.video_cell_ids)
    if len(self.grid) != 2 or min(self.grid) < 1 or not self.cell_ids:
      raise ValueError(f"model.video_grid must be (rows, cols) with video_cell_ids; got {self.grid}")
    zeros = lambda n: nnx.Param(  # noqa: E731
      jnp.zeros((n, model.width), jnp.dtype(model.param_dtype)), **logical_axes(None, "embed")
    )
    self.rows, self.cols = zeros(self.grid[0]), zeros(self.grid[1])

  def __call__(self, tokens: jax.Array, positions: jax.Array, prefix_length: jax.Array) -> jax.Array:
    """`[B, S]` ids at `positions [S]` -> `[B, S, W]` (zero off the video tokens)."""
    index = video_cells(tokens, positions, prefix_length, self.cell_ids)
    cell = jnp.maximum(index, 0) % (self.grid[0] * self.grid[1])
    rows, cols = self.rows.value[cell // self.grid[1]], self.cols.value[cell % self.grid[1]]
    return jnp.where((index >= 0)[..., None], rows + cols, 0.0)


def _check_tokens(tokens: jax.Array, prefix_length: jax.Array) -> None:
  if tokens.ndim != 2 or prefix_length.shape != tokens.shape[:1]:
    raise ValueError(
      f"tokens must be [B, S] with prefix_length [B], got {tokens.shape}, {prefix_length.shape}"
    )


class MLP(nnx.Module):
  """SwiGLU: out(silu(gate(x)) * up(x))."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.gate = _dense(model.width, model.mlp_dim, ("embed", "mlp"), model, rngs)
    self.up = _dense(model.width, model.mlp_dim, ("embed", "mlp"), model, rngs)
    self.out = _dense(model.mlp_dim, model.width, ("mlp", "embed"), model, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(jax.nn.silu(self.gate(x)) * self.up(x))


class Block(nnx.Module):
  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    self.attention_norm = RMSNorm(model.width, model.param_dtype, rngs=rngs)
    self.attention = Attention(model, rngs=rngs)
    self.mlp_norm = RMSNorm(model.width, model.param_dtype, rngs=rngs)
    self.mlp = MLP(model, rngs=rngs)

  def __call__(
    self, x, positions, key_positions, prefix_length, cache=None, cache_index=None, layer=None, key_valid=None
  ):
    """`x [B, S, W]` at `positions [S]`; with a `KVCache` the new keys and values are written into layer
    `layer` at slot `cache_index` and attention runs over the cache at `key_positions [L]`; `key_valid
    [B, L]` (optional) hides keys. Returns `(x, cache)`."""
    q, k, v = self.attention.project(self.attention_norm(x), positions)
    if cache is None and self.attention.implementation != "dense":
      attended = self.attention.attend_sequence(q, k, v, positions, prefix_length, key_valid)
      x = sharding.logical_constraint(x + attended, ACTIVATION_AXES)
      return sharding.logical_constraint(x + self.mlp(self.mlp_norm(x)), ACTIVATION_AXES), cache
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, H, S, D]
    if cache is not None:
      cache = cache.write(layer, cache_index, k, v)
      k, v = cache.layer(layer)
    mask = prefix_lm_mask(positions, key_positions, prefix_length)
    if key_valid is not None:
      mask = mask & key_valid[:, None, :]
    x = sharding.logical_constraint(x + self.attention.attend(q, k, v, mask), ACTIVATION_AXES)
    return sharding.logical_constraint(x + self.mlp(self.mlp_norm(x)), ACTIVATION_AXES), cache


class Transformer(nnx.Module):
  """The prefix LM. `model` keys: vocab_size, width, depth, heads, head_dim, mlp_dim, rope_base,
  tied_embeddings, text_embedding_dim (0: none), dtype / param_dtype (compute / storage), remat ("none" |
  "full" | "dots"), logits_chunk (positions per loss chunk)."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.model = model
    if model.remat != "none" and model.remat not in REMAT_POLICIES:
      raise ValueError(f"unknown remat policy {model.remat!r}: none, {', '.join(REMAT_POLICIES)}")
    self.embed = nnx.Embed(
      model.vocab_size,
      model.width,
      dtype=jnp.dtype(model.dtype),
      param_dtype=jnp.dtype(model.param_dtype),
      # std 1/sqrt(width): the tied output layer then starts with unit-scale logits (pre-norm blocks do
      # not mind the small input embeddings).
      embedding_init=nnx.initializers.normal(model.width**-0.5),
      embedding_metadata=logical_axes("vocab", "embed"),
      rngs=rngs,
    )
    self.text_projection = (
      _dense(model.text_embedding_dim, model.width, ("text_embed", "embed"), model, rngs)
      if model.text_embedding_dim
      else None
    )
    self.video_positions = VideoPositions(model, rngs=rngs) if model.get("video_grid") else None
    self.blocks = nnx.List([Block(model, rngs=rngs) for _ in range(model.depth)])
    self.final_norm = RMSNorm(model.width, model.param_dtype, rngs=rngs)
    self.head = (
      None
      if model.tied_embeddings
      else _dense(model.width, model.vocab_size, ("embed", "vocab"), model, rngs)
    )

  def embed_inputs(
    self,
    tokens: jax.Array,
    positions: jax.Array,
    prefix_length: jax.Array,
    text_embedding=None,
    text_slots=None,
  ) -> jax.Array:
    """`[B, S]` ids at `positions [S]` (+ `text_embedding [B, L, D]`, `text_slots [B, S]` rows or -1) ->
    `[B, S, W]`."""
    x = self.embed(tokens)
    if self.video_positions is not None:
      x = x + self.video_positions(tokens, positions, prefix_length).astype(x.dtype)
    if text_embedding is None:
      return sharding.logical_constraint(x, ACTIVATION_AXES)
    if self.text_projection is None:
      raise ValueError("this model has no text projection (model.text_embedding_dim = 0)")
    if text_slots is None or text_slots.shape != tokens.shape or text_embedding.ndim != 3:
      raise ValueError(
        f"text_embedding must be [B, L, D] with text_slots [B, S] = tokens' shape {tokens.shape}"
      )
    rows = jnp.take_along_axis(text_embedding, jnp.maximum(text_slots, 0)[..., None], axis=1)
    x = jnp.where((text_slots >= 0)[..., None], self.text_projection(rows.astype(x.dtype)), x)
    return sharding.logical_constraint(x, ACTIVATION_AXES)

  def output_kernel(self) -> jax.Array:
    """`[W, vocab]` matrix mapping normed hidden states to logits."""
    return self.embed.embedding.value.T if self.head is None else self.head.kernel.value

  def logits(self, x: jax.Array) -> jax.Array:
    """Final hidden states `[B, S, W]` -> `[B, S, vocab]` logits."""
    x = self.final_norm(x)
    logits = self.embed.attend(x) if self.head is None else self.head(x)
    return sharding.logical_constraint(logits, LOGITS_AXES)

  def hidden(
    self, tokens: jax.Array, prefix_length: jax.Array, text_embedding=None, text_slots=None, key_valid=None
  ):
    """Full-sequence pass: `[B, S]` ids -> final hidden states `[B, S, W]` (before the norm); blocks are
    rematerialized in the backward pass per `model.remat`."""
    positions = jnp.arange(tokens.shape[1])
    x = self.embed_inputs(tokens, positions, prefix_length, text_embedding, text_slots)
    run = lambda block, x: block(x, positions, positions, prefix_length, key_valid=key_valid)[0]
    if self.model.remat != "none":
      run = nnx.remat(run, policy=REMAT_POLICIES[self.model.remat])
    for block in self.blocks:
      x = run(block, x)
    return x

  def __call__(
    self, tokens: jax.Array, prefix_length: jax.Array, text_embedding=None, text_slots=None, key_valid=None
  ):
    """`[B, S]` int32 ids, `[B]` prefix lengths -> `[B, S, vocab]` logits (position i predicts i + 1)."""
    _check_tokens(tokens, prefix_length)
    return self.logits(self.hidden(tokens, prefix_length, text_embedding, text_slots, key_valid))

  def token_losses(
    self,
    tokens: jax.Array,
    prefix_length: jax.Array,
    text_embedding=None,
    text_slots=None,
    loss_positions: int | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """Next-token negative log-likelihood and correctness (argmax == next id), both `[B, S - 1]` float32
    for targets `tokens[:, 1:]`; logits are made `model.logits_chunk` positions at a time and recomputed
    in the backward pass.

    With `loss_positions` (a static int), only the targets `prefix_length - 1 ...` of each row, that many,
    get logits (a row's output follows its prefix: the rest is prefix or padding, which the loss masks
    out); both outputs are 0 at the other positions. On the demo mixture this skips two fifths of the
    vocabulary-sized matmul of the longest length group."""
    _check_tokens(tokens, prefix_length)
    x = self.final_norm(self.hidden(tokens, prefix_length, text_embedding, text_slots))[:, :-1]
    targets = tokens[:, 1:]
    if loss_positions is not None:
      picked = prefix_length[:, None] - 1 + jnp.arange(loss_positions)  # [B, P]
      inside = picked < targets.shape[1]  # a row whose prefix is long may end before P targets
      safe = jnp.minimum(picked, targets.shape[1] - 1)
      nll, correct = self._chunked_losses(
        jnp.take_along_axis(x, safe[..., None], axis=1), jnp.take_along_axis(targets, safe, axis=1)
      )
      rows = jnp.arange(tokens.shape[0])[:, None]
      scatter = lambda values: (
        jnp.zeros(targets.shape, values.dtype).at[rows, picked].set(jnp.where(inside, values, 0), mode="drop")
      )
      return scatter(nll), scatter(correct)
    return self._chunked_losses(x, targets)

  def _chunked_losses(self, x: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`token_losses` of final-norm activations `x [B, P, W]` and their targets `[B, P]`."""
    kernel = self.output_kernel()
    chunk = min(self.model.logits_chunk, targets.shape[1])
    pad = -targets.shape[1] % chunk
    x = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
    padded_targets = jnp.pad(targets, ((0, 0), (0, pad)))
    b, s, w = x.shape

    @jax.checkpoint
    def chunk_losses(x_chunk, target_chunk):
      logits = jnp.einsum("bsw,wv->bsv", x_chunk, kernel.astype(x_chunk.dtype)).astype(jnp.float32)
      logits = sharding.logical_constraint(logits, LOGITS_AXES)
      # nll = logsumexp - the target's logit, never the [.., vocab] log-probabilities: half the step time
      # of log_softmax + take on CPU. Correct = the target's logit is the largest (a tie counts as right).
      target_logits = jnp.take_along_axis(logits, target_chunk[..., None], axis=-1)[..., 0]
      nll = jax.nn.logsumexp(logits, axis=-1) - target_logits
      correct = target_logits >= jax.lax.stop_gradient(logits.max(axis=-1))
      return nll, correct.astype(jnp.float32)

    x_chunks = x.reshape(b, s // chunk, chunk, w).swapaxes(0, 1)
    t_chunks = padded_targets.reshape(b, s // chunk, chunk).swapaxes(0, 1)
    nll, correct = jax.lax.map(lambda args: chunk_losses(*args), (x_chunks, t_chunks))
    unchunk = lambda a: a.swapaxes(0, 1).reshape(b, s)[:, : targets.shape[1]]
    return unchunk(nll), unchunk(correct)

  def init_cache(self, batch: int, max_length: int, dtype=None) -> KVCache:
    """Empty key/value cache: per layer k and v `[batch, heads, max_length, head_dim]`, in the model's
    compute dtype unless `dtype` says otherwise (bf16 on accelerators: half the cache memory)."""
    dtype = jnp.dtype(self.model.dtype) if dtype is None else dtype
    return KVCache.zeros(len(self.blocks), batch, max_length, self.model.heads, self.model.head_dim, dtype)

  def extend(
    self,
    tokens: jax.Array,
    start: int | jax.Array,
    prefix_length: jax.Array,
    cache: KVCache,
    text_embedding=None,
    text_slots=None,
    key_valid=None,
    last_logits_only=False,
  ):
    """Runs `tokens [B, S]` at positions start .. start + S - 1 against the cache (keys beyond the written
    ones are masked by position). Returns `(logits [B, S, vocab], cache)` (`[B, 1, vocab]` of the last
    position with `last_logits_only`, what a prefill needs); prefill is extend at 0."""
    if cache.depth != len(self.blocks) or cache.batch_size != tokens.shape[0]:
      raise ValueError(f"cache of {cache.depth} layers x batch {cache.batch_size} for tokens {tokens.shape}")
    positions = start + jnp.arange(tokens.shape[1])
    key_positions = jnp.arange(cache.max_length)
    # Cache slots not yet written hold zeros; they are at positions > every query, so the causal part of
    # the mask hides them, and the prefix part only reaches written slots when the prefix was prefilled.
    if key_valid is not None:
      cache = cache.mark_valid(start, key_valid)
    x = self.embed_inputs(tokens, positions, prefix_length, text_embedding, text_slots)
    for layer, block in enumerate(self.blocks):
      x, cache = block(x, positions, key_positions, prefix_length, cache, start, layer, cache.valid)
    return self.logits(x[:, -1:] if last_logits_only else x), cache
