import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.model import attention_kernels
from videopoet_jax.model.transformer import Transformer, prefix_lm_mask, rope, video_cells

from conftest import small_model_config


def _model(tied=False):
  config = small_model_config(tied=tied)
  return Transformer(config, rngs=nnx.Rngs(0))


# A model with video positions: ids [20, 40) and 5 (a mask) fill cells of a 2 x 3 latent frame.
GRID, CELL_IDS = (2, 3), ((20, 40), (5, 6))


def _grid_model(rows_and_cols=True):
  """A tiny model with `VideoPositions`, its row and column embeddings random (they start at zero)."""
  config = small_model_config()
  config.video_grid, config.video_cell_ids = GRID, CELL_IDS
  model = Transformer(config, rngs=nnx.Rngs(0))
  if rows_and_cols:
    for i, table in enumerate((model.video_positions.rows, model.video_positions.cols)):
      table.value = jax.random.normal(jax.random.key(10 + i), table.value.shape)
  return model


def _tokens(batch=2, length=12, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, length), 0, 50)


def _decoded(model, tokens, prefix, prefill):
  """`[B, S, vocab]` logits of `tokens [B, S]` through the KV cache: the first `prefill` positions in one
  call, then one token a call, as sampling feeds them."""
  cache = model.init_cache(tokens.shape[0], tokens.shape[1] + 2)
  logits, cache = model.extend(tokens[:, :prefill], 0, prefix, cache)
  steps = [logits]
  for i in range(prefill, tokens.shape[1]):
    logits, cache = model.extend(tokens[:, i : i + 1], i, prefix, cache)
    steps.append(logits)
  return jnp.concatenate(steps, axis=1)


def test_prefix_mask():
  mask = np.asarray(prefix_lm_mask(jnp.arange(6), jnp.arange(6), jnp.array([3, 0])))
  assert mask[0, 0, 2] and mask[0, 1, 2]  # prefix tokens see later prefix tokens
  assert not mask[0, 2, 3] and not mask[0, 3, 4]  # nothing sees a later non-prefix token
  assert mask[0, 4, 3] and mask[0, 5, 0]
  np.testing.assert_array_equal(mask[1], np.tril(np.ones((6, 6), bool)))  # no prefix: causal


def test_outputs_never_see_later_tokens_and_the_prefix_is_bidirectional():
  model = _model()
  tokens, prefix = _tokens(), jnp.array([5, 5])
  base = model(tokens, prefix)
  later = model(tokens.at[:, 8].set((tokens[:, 8] + 1) % 50), prefix)
  np.testing.assert_allclose(base[:, :8], later[:, :8], atol=1e-6)  # positions before 8 unchanged
  assert not np.allclose(base[:, 8:], later[:, 8:])
  in_prefix = model(tokens.at[:, 4].set((tokens[:, 4] + 1) % 50), prefix)
  assert not np.allclose(base[:, 0], in_prefix[:, 0])  # position 0 sees prefix position 4


def test_kv_cache_decoding_equals_recomputation():
  for tied in (False, True):
    model = _model(tied)
    tokens, prefix = _tokens(length=10, seed=1), jnp.array([4, 4])
    full = model(tokens, prefix)
    np.testing.assert_allclose(_decoded(model, tokens, prefix, 4), full, rtol=1e-4, atol=1e-4)


def test_a_bfloat16_model_decodes_from_a_bfloat16_cache_matching_its_forward_pass():
  config = small_model_config()
  config.dtype = "bfloat16"
  model = Transformer(config, rngs=nnx.Rngs(0))
  tokens, prefix = _tokens(length=10, seed=1), jnp.array([4, 4])
  full = model(tokens, prefix).astype(jnp.float32)
  assert model.init_cache(2, 16).layer(0)[0].dtype == jnp.bfloat16
  # bf16 has 8 mantissa bits: logits of unit scale agree to a few hundredths.
  np.testing.assert_allclose(_decoded(model, tokens, prefix, 4).astype(jnp.float32), full, atol=0.05)


def test_rope_is_relative():
  q = jax.random.normal(jax.random.key(2), (1, 1, 1, 8))
  k = jax.random.normal(jax.random.key(3), (1, 1, 1, 8))
  dot = lambda i, j: float(jnp.sum(rope(q, jnp.array([i]), 1e4) * rope(k, jnp.array([j]), 1e4)))
  assert dot(3, 1) == pytest.approx(dot(12, 10), rel=1e-4)


def test_parameters_carry_logical_axes_and_bad_shapes_raise():
  model = _model()
  axes = {
    "/".join(map(str, path)): var.get_metadata()["out_sharding"]
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
    if len(var.value.shape) > 1
  }
  assert axes["embed/embedding"] == ("vocab", "embed") and axes["head/kernel"] == ("embed", "vocab")
  assert axes["blocks/0/mlp/gate/kernel"] == ("embed", "mlp")
  with pytest.raises(ValueError, match="prefix_length"):
    model(_tokens(), jnp.array([1]))


def test_hidden_left_padding_changes_nothing():
  model = _model()
  tokens, prefix = _tokens(batch=1, length=9, seed=4), jnp.array([5])
  plain = model(tokens, prefix)
  padded = jnp.concatenate([jnp.zeros((1, 3), tokens.dtype), tokens], axis=1)
  valid = jnp.arange(12)[None] >= 3
  out = model(padded, prefix + 3, key_valid=valid)
  np.testing.assert_allclose(out[:, 3:], plain, rtol=1e-4, atol=1e-4)
  # Through the cache: prefill the padded prefix, then decode the rest.
  cache = model.init_cache(1, 12)
  logits, cache = model.extend(padded[:, :8], 0, prefix + 3, cache, key_valid=valid[:, :8])
  steps = [logits[:, 3:]]
  for i in range(8, 12):
    logits, cache = model.extend(padded[:, i : i + 1], i, prefix + 3, cache)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), plain, rtol=1e-4, atol=1e-4)


def test_chunked_attention_equals_dense_in_outputs_and_gradients():
  """Key chunks of 5 over 13 positions (a padded last chunk), two prefix lengths, left padding hidden."""
  dense, chunked = small_model_config(), small_model_config()
  chunked.attention, chunked.attention_chunk = "chunked", 5
  models = [Transformer(c, rngs=nnx.Rngs(0)) for c in (dense, chunked)]
  tokens, prefix = _tokens(length=13, seed=5), jnp.array([4, 0])
  valid = jnp.arange(13)[None] >= jnp.array([[0], [2]])
  outputs = [m(tokens, prefix, key_valid=valid) for m in models]
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)

  def loss(params, graphdef):
    nll, _ = nnx.merge(graphdef, params, copy=True).token_losses(tokens, prefix)
    return nll.mean()

  grads = []
  for model in models:
    graphdef, params = nnx.split(model, nnx.Param)
    grads.append(jax.grad(loss)(params, graphdef))
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kernel", attention_kernels.KERNELS)
def test_fused_kernel_attention_equals_dense_in_outputs_and_gradients(kernel):
  """cudnn (XLA's implementation of the same call off GPU) and splash (interpreted off TPU, one 128-wide
  tile over 13 positions: padded inside), two prefix lengths (one empty); left padding (`key_valid`) takes
  the chunked pass."""
  dense, fused = small_model_config(), small_model_config()
  fused.attention, fused.attention_chunk = kernel, attention_kernels.SPLASH_TILE_MULTIPLE
  models = [Transformer(c, rngs=nnx.Rngs(0)) for c in (dense, fused)]
  tokens, prefix = _tokens(length=13, seed=6), jnp.array([5, 0])
  np.testing.assert_allclose(models[0](tokens, prefix), models[1](tokens, prefix), rtol=1e-5, atol=1e-5)
  valid = jnp.arange(13)[None] >= jnp.array([[0], [2]])
  np.testing.assert_allclose(
    models[0](tokens, prefix, key_valid=valid),
    models[1](tokens, prefix, key_valid=valid),
    rtol=1e-5,
    atol=1e-5,
  )

  def loss(params, graphdef):
    nll, _ = nnx.merge(graphdef, params, copy=True).token_losses(tokens, prefix)
    return nll.mean()

  grads = [jax.grad(loss)(*reversed(nnx.split(model, nnx.Param))) for model in models]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_video_cells_number_each_run_of_video_ids_and_a_decoding_step_agrees():
  # <bos> task text text <bov> v v <mask> v <eov> <bov_o> | v v v v v v v (prefix length 11)
  tokens = jnp.array([[1, 2, 45, 46, 3, 20, 21, 5, 22, 4, 8, 30, 31, 32, 33, 34, 35, 36]])
  prefix = jnp.array([11])
  cells = np.asarray(video_cells(tokens, jnp.arange(18), prefix, CELL_IDS))[0]
  np.testing.assert_array_equal(cells, [-1, -1, -1, -1, -1, 0, 1, 2, 3, -1, -1, 0, 1, 2, 3, 4, 5, 6])
  for p in range(11, 18):  # one output token at a time, as the KV-cache decoder feeds them
    step = video_cells(tokens[:, p : p + 1], jnp.array([p]), prefix, CELL_IDS)
    assert int(step[0, 0]) == cells[p]


def test_video_positions_decode_through_the_cache_as_recomputed_and_start_as_a_no_op():
  model = _grid_model()
  # A prefix of any ids (about 40% video ids, runs of them), then a video output: one run of video ids.
  prompt = jax.random.randint(jax.random.key(3), (2, 6), 0, 50)
  tokens = jnp.concatenate([prompt, jax.random.randint(jax.random.key(4), (2, 8), 20, 40)], axis=1)
  prefix = jnp.array([6, 6])
  full = model(tokens, prefix)
  np.testing.assert_allclose(_decoded(model, tokens, prefix, 6), full, rtol=1e-4, atol=1e-4)
  # The positions move the outputs; at their zero init the model computes what one without them does.
  assert not np.allclose(full, _model()(tokens, prefix), atol=1e-3)
  np.testing.assert_allclose(
    _grid_model(rows_and_cols=False)(tokens, prefix), _model()(tokens, prefix), atol=1e-6
  )
