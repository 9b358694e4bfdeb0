import jax
import jax.numpy as jnp
import numpy as np

from videopoet_jax.tokenizers import rvq


def _state(levels=3, size=8, dim=4, seed=0):
  return rvq.CodebookState.create(levels, size, dim, jax.random.key(seed))


def test_decode_of_encode_equals_quantized_output():
  state = _state()
  z = jax.random.normal(jax.random.key(1), (2, 5, 4))
  quantized, ids, residuals, _ = rvq.quantize(state, z)
  assert ids.shape == (2, 3, 5) and ids.dtype == jnp.int32 and residuals.shape == (3, 2, 5, 4)
  np.testing.assert_allclose(rvq.ids_to_vectors(state, ids), quantized, atol=1e-5)
  # Each level's input is the previous input minus its code.
  code0 = state.codebooks[0][ids[:, 0]]
  np.testing.assert_allclose(residuals[1], z - code0, atol=1e-5)


def test_each_level_picks_the_nearest_code():
  state = _state()
  z = jax.random.normal(jax.random.key(2), (1, 7, 4))
  _, ids, residuals, _ = rvq.quantize(state, z)
  for level in range(3):
    distances = jnp.sum((residuals[level][..., None, :] - state.codebooks[level]) ** 2, axis=-1)
    np.testing.assert_array_equal(ids[:, level], jnp.argmin(distances, axis=-1))


def test_quantizer_dropout_masks():
  key = jax.random.key(3)
  mask = np.asarray(rvq.dropout_mask(key, 4000, 4, probability=1.0))
  assert mask.shape == (4000, 4)
  counts = mask.sum(axis=1)
  # Every row is a prefix of ones of length 1..4, and every length occurs about equally often.
  np.testing.assert_array_equal(mask, np.arange(4)[None, :] < counts[:, None])
  assert set(np.unique(counts)) == {1, 2, 3, 4}
  assert np.all(np.abs(np.bincount(counts.astype(int))[1:] / 4000 - 0.25) < 0.04)
  assert np.all(np.asarray(rvq.dropout_mask(key, 100, 4, probability=0.0)) == 1)


def test_masked_levels_do_not_reach_the_output():
  state = _state()
  z = jax.random.normal(jax.random.key(4), (2, 5, 4))
  mask = rvq.level_mask(jnp.array([1, 3]), 3)
  quantized, ids, _, _ = rvq.quantize(state, z, mask)
  np.testing.assert_allclose(quantized[0], rvq.ids_to_vectors(state, ids[:1, :1])[0], atol=1e-5)
  np.testing.assert_allclose(quantized[1], rvq.ids_to_vectors(state, ids[1:])[0], atol=1e-5)


def test_ema_update_with_no_memory_moves_codes_to_cluster_means():
  state = _state(levels=1)
  z = jax.random.normal(jax.random.key(5), (3, 10, 4))
  _, ids, residuals, _ = rvq.quantize(state, z)
  mask = jnp.ones((3, 1))
  new = rvq.ema_update(state, residuals, ids, mask, decay=0.0)
  flat_ids, flat_z = np.asarray(ids).reshape(-1), np.asarray(z).reshape(-1, 4)
  for code in np.unique(flat_ids):
    np.testing.assert_allclose(new.codebooks[0, code], flat_z[flat_ids == code].mean(0), rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(new.cluster_size[0].sum(), 30.0)


def test_dead_code_restart_revives_unused_codes():
  # Data near two points; codes 2..7 sit far away and are never chosen.
  key = jax.random.key(6)
  centres = jnp.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
  z = centres[jax.random.randint(key, (4, 16), 0, 2)] + 0.01 * jax.random.normal(key, (4, 16, 4))
  codebooks = jnp.concatenate([centres, 100.0 + jnp.arange(24.0).reshape(6, 4)])[None]
  state = rvq.CodebookState(codebooks, jnp.ones((1, 8)), codebooks)
  mask = jnp.ones((4, 1))
  for _ in range(50):
    _, ids, residuals, _ = rvq.quantize(state, z)
    state = rvq.ema_update(state, residuals, ids, mask, decay=0.9)
  assert set(np.unique(ids)) == {0, 1}
  dead_before = np.asarray(state.cluster_size[0] < 0.05)
  assert dead_before[2:].all() and not dead_before[:2].any()
  state, restarted = rvq.restart_dead_codes(state, residuals, 0.05, jax.random.key(7))
  assert int(restarted[0]) == 6
  # Restarted codes now lie on data vectors, so the next assignment uses them.
  _, ids, _, _ = rvq.quantize(state, z)
  assert len(set(np.unique(ids)) - {0, 1}) > 0
  flat = np.asarray(residuals[0]).reshape(-1, 4)
  for code in range(2, 8):
    assert np.min(np.linalg.norm(flat - np.asarray(state.codebooks[0, code]), axis=1)) < 1e-6


def test_kmeans_init_beats_random_codebooks():
  key = jax.random.key(8)
  z = jax.random.normal(key, (8, 32, 4)) * jnp.array([3.0, 1.0, 0.3, 0.1])
  random_state = _state(levels=2, size=16)
  fitted = rvq.kmeans_init(random_state, z, iterations=10, key=key)

  def error(state):
    quantized = rvq.quantize(state, z)[0]
    return float(jnp.mean((quantized - z) ** 2))

  assert error(fitted) < 0.5 * error(random_state)
  assert fitted.cluster_size[0].sum() == 8 * 32


def test_usage_stats():
  counts = np.array([[4, 4, 0, 0], [1, 1, 1, 1]])
  stats = rvq.usage_stats(counts)
  assert stats["usage_l0"] == 0.5 and stats["usage_l1"] == 1.0
  np.testing.assert_allclose([stats["perplexity_l0"], stats["perplexity_l1"]], [2.0, 4.0])
