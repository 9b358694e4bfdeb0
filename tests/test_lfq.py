import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet_jax.tokenizers import lfq


@pytest.mark.parametrize("bits", [1, 8, 14, 18])
def test_ids_codes_round_trip(bits):
  ids = jax.random.randint(jax.random.PRNGKey(bits), (3, 5, 7), 0, 2**bits)
  codes = lfq.ids_to_codes(ids, bits)
  assert codes.shape == (3, 5, 7, bits)
  assert set(np.unique(codes)) <= {-1.0, 1.0}
  np.testing.assert_array_equal(lfq.codes_to_ids(codes), ids)


def test_bit_order_is_channel_zero_lsb():
  np.testing.assert_array_equal(lfq.ids_to_codes(jnp.array(1), 4), [1, -1, -1, -1])
  np.testing.assert_array_equal(lfq.ids_to_codes(jnp.array(8), 4), [-1, -1, -1, 1])
  assert int(lfq.codes_to_ids(jnp.array([0.0, 0.5, -2.0]))) == 2  # zero maps to -1 (bit 0)


def test_quantize_forward_sign_backward_identity():
  z = jnp.array([-1.5, -0.0, 0.2, 3.0])
  np.testing.assert_array_equal(lfq.quantize(z), [-1, -1, 1, 1])
  grad = jax.grad(lambda x: jnp.sum(lfq.quantize(x) * jnp.arange(4.0)))(z)
  np.testing.assert_array_equal(grad, jnp.arange(4.0))


def _brute_force_entropies(z, inv_temperature):
  bits = z.shape[-1]
  codebook = np.array(list(itertools.product([-1.0, 1.0], repeat=bits)))  # all 2^bits codes
  distances = ((np.asarray(z)[:, None, :] - codebook[None]) ** 2).sum(-1)
  p = np.asarray(jax.nn.softmax(-inv_temperature * distances, axis=-1), np.float64)
  per_sample = -(p * np.log(np.maximum(p, 1e-30))).sum(-1).mean()
  avg = p.mean(0)
  return per_sample, -(avg * np.log(np.maximum(avg, 1e-30))).sum()


@pytest.mark.parametrize("inv_temperature", [0.3, 2.0])
def test_subgroup_entropy_matches_brute_force_on_256_codes(inv_temperature):
  z = jax.random.normal(jax.random.PRNGKey(0), (64, 8)) * 0.7
  per_sample_bf, batch_bf = _brute_force_entropies(z, inv_temperature)
  per_sample, batch = lfq.entropy_terms(z, group_bits=8, inv_temperature=inv_temperature)
  np.testing.assert_allclose(per_sample, per_sample_bf, rtol=1e-4)
  np.testing.assert_allclose(batch, batch_bf, rtol=1e-4)
  # Smaller groups: the per-sample term stays exact, the batch term is an upper bound.
  per_sample4, batch4 = lfq.entropy_terms(z, group_bits=4, inv_temperature=inv_temperature)
  np.testing.assert_allclose(per_sample4, per_sample_bf, rtol=1e-4)
  assert float(batch4) >= batch_bf - 1e-4


def test_subgroup_batch_entropy_exact_for_independent_groups():
  # Every combination of two independent 4-bit halves: the joint is the product of the marginals.
  halves = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 4))
  z = jnp.concatenate([jnp.repeat(halves[0], 6, axis=0), jnp.tile(halves[1], (6, 1))], axis=-1)
  _, batch_bf = _brute_force_entropies(z, 1.0)
  _, batch4 = lfq.entropy_terms(z, group_bits=4, inv_temperature=1.0)
  np.testing.assert_allclose(batch4, batch_bf, rtol=1e-4)


def test_entropy_rejects_indivisible_groups():
  with pytest.raises(AssertionError, match="not divisible"):
    lfq.entropy_terms(jnp.zeros((4, 10)), group_bits=4, inv_temperature=1.0)


def test_usage_stats_detects_collapse():
  collapsed = lfq.usage_stats(lfq.code_histogram(jnp.zeros(1000, jnp.int32), 256))
  spread = lfq.usage_stats(lfq.code_histogram(jnp.arange(1024) % 256, 256))
  assert collapsed["perplexity"] == pytest.approx(1.0)
  assert collapsed["codebook_usage"] == pytest.approx(1 / 256)
  assert spread["perplexity"] == pytest.approx(256.0)
  assert spread["codebook_usage"] == 1.0
