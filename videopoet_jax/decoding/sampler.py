"""Batch generation with a KV cache: one prefill over the prompt, then a jitted loop over output tokens.

    tokens = generate(model, prompt, schedule, settings, jax.random.key(0))  # [B, T]

`prompt [B, P]` holds the prefix tokens, ending with the token that precedes the first output (e.g. <bov_o>);
all prompts of a batch share P (left-aligned). The first `prefix_length [B]` (default P) prompt positions
are the model's bidirectional prefix. Classifier-free guidance runs conditional and unconditional prompts
as one batch of 2B (a negative prompt is just another `uncond_prompt`). `schedule` fixes the allowed ids
and sampling settings per output position (schedule.py, settings.py).

`model` is a `Transformer` (or anything with `init_cache(batch, max_length)`, `extend(tokens, start,
prefix_length, cache, **inputs) -> (logits, cache)` and `model.vocab_size`). The model is split into graph
and state and merged inside jit, so parameters are arguments, not compiled-in constants.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from videopoet_jax.decoding.logits import choose_tokens
from videopoet_jax.decoding.schedule import OutputSchedule
from videopoet_jax.decoding.settings import Filters, SamplingSettings
from videopoet_jax.model.kv_cache import KVCache


@flax.struct.dataclass
class DecodeState:
  """The loop carry. B' = 2B under guidance (conditional rows, then unconditional)."""

  step: jax.Array  # [] int32: the output position whose token is chosen next
  logits: jax.Array  # [B', V] float32: next-token logits for that position
  tokens: jax.Array  # [B, T] int32: output buffer (positions >= step hold zeros)
  cache: KVCache  # holds the prompt and outputs before `step` (max length P + T - 1)
  keys: jax.Array  # [B] PRNG keys, one per example (step t draws with fold_in(key, t))


class _Graph:
  """A GraphDef as a static jit argument: equality is the GraphDef's, the hash a cheap summary (a model
  config held as a mutable ConfigDict makes the GraphDef itself unhashable)."""

  def __init__(self, graphdef):
    self.graphdef = graphdef

  def __eq__(self, other):
    return isinstance(other, _Graph) and self.graphdef == other.graphdef

  def __hash__(self):
    return hash((len(self.graphdef.nodes), self.graphdef.num_leaves))


def _split(model) -> tuple[_Graph, nnx.State]:
  graphdef, params = nnx.split(model)
  return _Graph(graphdef), params


def prefill(model, prompt: jax.Array, prefix_length: jax.Array, max_length: int, **prefix_inputs):
  """Runs the whole prompt `[B, P]` int32 (prefix lengths `[B]`) through the model in one call.

  Extra keyword inputs (e.g. external text embeddings) are passed to `model.extend` for this call only.
  Returns `(logits [B, V] float32 predicting the token after the prompt, cache of max_length)`.
  """
  if prompt.ndim != 2 or prefix_length.shape != prompt.shape[:1] or max_length < prompt.shape[1]:
    raise ValueError(f"need prompt [B, P], prefix_length [B], max_length >= P: {prompt.shape}, {max_length}")
  cache = model.init_cache(prompt.shape[0], max_length)
  logits, cache = model.extend(prompt, 0, prefix_length, cache, last_logits_only=True, **prefix_inputs)
  return logits[:, -1].astype(jnp.float32), cache


def _start(model, prompt, prefix_length, schedule, keys, prefix_inputs) -> DecodeState:
  logits, cache = prefill(
    model, prompt, prefix_length, prompt.shape[1] + schedule.length - 1, **prefix_inputs
  )
  tokens = jnp.zeros((keys.shape[0], schedule.length), jnp.int32)
  return DecodeState(step=jnp.zeros((), jnp.int32), logits=logits, tokens=tokens, cache=cache, keys=keys)


def _choose(state: DecodeState, schedule, settings, filters) -> tuple[jax.Array, jax.Array]:
  """Token `[B]` of output position `state.step`, and the token buffer with it written."""
  step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(state.keys, state.step)
  token = choose_tokens(state.logits, state.step, schedule, settings, step_keys, filters)
  return token, state.tokens.at[:, state.step].set(token)


def _advance(model, state, prompt_length, prefix_length, schedule, settings, filters) -> DecodeState:
  """Chooses the token at `state.step` and runs it through the model (writing its keys and values)."""
  token, tokens = _choose(state, schedule, settings, filters)
  rows = state.logits.shape[0] // token.shape[0]
  fed = jnp.tile(token, rows)[:, None]  # [B', 1]: both halves under guidance get the same token
  logits, cache = model.extend(fed, prompt_length + state.step, prefix_length, state.cache)
  return DecodeState(
    step=state.step + 1, logits=logits[:, 0].astype(jnp.float32), tokens=tokens, cache=cache, keys=state.keys
  )


@functools.partial(jax.jit, static_argnames=("graphdef", "filters"))
def _generate_loop(graphdef, params, prompt, prefix_length, schedule, settings, keys, prefix_inputs, filters):
  model = nnx.merge(graphdef.graphdef, params)
  state = _start(model, prompt, prefix_length, schedule, keys, prefix_inputs)
  advance = lambda s: _advance(model, s, prompt.shape[1], prefix_length, schedule, settings, filters)
  state = jax.lax.while_loop(lambda s: s.step < schedule.length - 1, advance, state)
  return _choose(state, schedule, settings, filters)[1]


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _start_jit(graphdef, params, prompt, prefix_length, schedule, keys, prefix_inputs):
  return _start(nnx.merge(graphdef.graphdef, params), prompt, prefix_length, schedule, keys, prefix_inputs)


@functools.partial(
  jax.jit, static_argnames=("graphdef", "prompt_length", "filters"), donate_argnames=("state",)
)
def _advance_jit(graphdef, params, state, prompt_length, prefix_length, schedule, settings, filters):
  model = nnx.merge(graphdef.graphdef, params)
  return _advance(model, state, prompt_length, prefix_length, schedule, settings, filters)


@functools.partial(jax.jit, static_argnames=("filters",))
def _finish_jit(state, schedule, settings, filters):
  return _choose(state, schedule, settings, filters)[1]


def _as_keys(rng: jax.Array, batch: int) -> jax.Array:
  """A key (typed or raw uint32 `[2]`) -> `[batch]` keys by splitting; `[batch]` keys pass through."""
  if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.wrap_key_data(rng)
  if rng.shape == ():
    return jax.random.split(rng, batch)
  if rng.shape != (batch,):
    raise ValueError(f"rng must be one key or [B={batch}] keys, got shape {rng.shape}")
  return rng


def _prefix_lengths(prefix_length, batch: int, prompt_length: int) -> jax.Array:
  if prefix_length is None:
    return jnp.full((batch,), prompt_length, jnp.int32)
  prefix_length = jnp.asarray(prefix_length, jnp.int32)
  values = np.asarray(prefix_length)
  if prefix_length.shape != (batch,) or (values < 0).any() or (values > prompt_length).any():
    raise ValueError(f"prefix_length must be [B={batch}] in [0, {prompt_length}], got {values}")
  return prefix_length


def prepare(
  model,
  prompt: jax.Array,
  schedule: OutputSchedule,
  settings: SamplingSettings,
  rng: jax.Array,
  *,
  prefix_length: jax.Array | None = None,
  uncond_prompt: jax.Array | None = None,
  uncond_prefix_length: jax.Array | None = None,
  prefix_inputs: Mapping | None = None,
  uncond_prefix_inputs: Mapping | None = None,
) -> dict:
  """Validates `generate`'s arguments and returns the arrays of the (possibly doubled) batch: prompt
  `[B', P]`, prefix_length `[B']`, keys `[B]`, prefix_inputs, and the static `filters`."""
  prompt = jnp.asarray(prompt)
  if prompt.ndim != 2 or prompt.shape[1] < 1 or not jnp.issubdtype(prompt.dtype, jnp.integer):
    raise ValueError(f"prompt must be [B, P] integer ids with P >= 1, got {prompt.shape} {prompt.dtype}")
  batch, prompt_length = prompt.shape
  vocab_size = model.model.vocab_size
  settings.validate(vocab_size)
  schedule.validate(vocab_size, settings.num_kinds)
  prefix_length = _prefix_lengths(prefix_length, batch, prompt_length)
  prefix_inputs = dict(prefix_inputs or {})
  if uncond_prompt is None:
    if (np.asarray(settings.guidance) != 1).any():
      raise ValueError("guidance != 1 needs an uncond_prompt")
  else:
    uncond_prompt = jnp.asarray(uncond_prompt)
    if uncond_prompt.shape != prompt.shape:
      raise ValueError(
        f"uncond_prompt must have the prompt's shape {prompt.shape}, got {uncond_prompt.shape}"
      )
    if bool(prefix_inputs) != (uncond_prefix_inputs is not None):
      raise ValueError("with guidance, give prefix_inputs and uncond_prefix_inputs together or neither")
    uncond_length = _prefix_lengths(uncond_prefix_length, batch, prompt_length)
    prompt = jnp.concatenate([prompt, uncond_prompt], axis=0)
    prefix_length = jnp.concatenate([prefix_length, uncond_length], axis=0)
    prefix_inputs = jax.tree.map(
      lambda c, u: jnp.concatenate([c, u], axis=0), prefix_inputs, dict(uncond_prefix_inputs or {})
    )
  return dict(
    prompt=prompt.astype(jnp.int32),
    prefix_length=prefix_length,
    schedule=schedule,
    keys=_as_keys(jnp.asarray(rng), batch),
    prefix_inputs=prefix_inputs,
    filters=Filters.for_settings(settings, vocab_size),
  )


def generate(model, prompt, schedule, settings, rng, **options) -> jax.Array:
  """Generates `schedule.length` tokens after each prompt in one jitted prefill + while_loop.

  Args:
    model: the prefix LM (see the module docstring).
    prompt: `[B, P]` int32 prompt ids (P shared by the batch).
    schedule: `OutputSchedule` of `[T]` arrays: allowed ids and settings kind per output position.
    settings: `SamplingSettings` of `[K]` arrays.
    rng: one PRNG key (split into one per example) or `[B]` keys (example b's tokens depend only on key b).
    **options: prefix_length `[B]`; uncond_prompt `[B, P]` and uncond_prefix_length `[B]` for guidance;
      prefix_inputs / uncond_prefix_inputs: dicts of `[B, ...]` arrays passed to the prefill call.
  Returns:
    `[B, T]` int32 generated ids.
  """
  inputs = prepare(model, prompt, schedule, settings, rng, **options)
  graphdef, params = _split(model)
  return _generate_loop(graphdef, params, settings=settings, **inputs)


def generate_stepwise(model, prompt, schedule, settings, rng, on_token=None, **options) -> jax.Array:
  """`generate` with the loop in Python: one jitted call per output token (same tokens; for progress bars,
  streaming, debugging and benchmark B6). Arguments and result as `generate`; `on_token()` (optional) is
  called after each output token."""
  inputs = prepare(model, prompt, schedule, settings, rng, **options)
  graphdef, params = _split(model)
  filters, prefix_length = inputs["filters"], inputs["prefix_length"]
  state = _start_jit(
    graphdef, params, inputs["prompt"], prefix_length, schedule, inputs["keys"], inputs["prefix_inputs"]
  )
  prompt_length = inputs["prompt"].shape[1]
  for _ in range(schedule.length - 1):
    state = _advance_jit(graphdef, params, state, prompt_length, prefix_length, schedule, settings, filters)
    if on_token is not None:
      jax.block_until_ready(state.step)
      on_token()
  tokens = _finish_jit(state, schedule, settings, filters)
  if on_token is not None:
    on_token()
  return tokens
