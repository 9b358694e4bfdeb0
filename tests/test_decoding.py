import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.decoding import (
  SamplingSettings,
  Segment,
  generate,
  generate_stepwise,
  schedule_from_segments,
)
from videopoet_jax.decoding.logits import top_k_filter, top_p_filter
from videopoet_jax.model.transformer import Transformer

from conftest import small_model_config

VOCAB = 50
PROMPT = 6
GREEDY = SamplingSettings.create(temperature=0.0)
HOT = SamplingSettings.create(temperature=1.0)


class OffsetTransformer(Transformer):
  """Adds an optional `offset [B, V]` to the logits of an extend call (stands in for extra prefill inputs
  such as text embeddings)."""

  def extend(self, tokens, start, prefix_length, cache, offset=None, **options):
    logits, cache = super().extend(tokens, start, prefix_length, cache, **options)
    return (logits if offset is None else logits + offset[:, None]), cache


@pytest.fixture(scope="module")
def model():
  config = small_model_config(VOCAB)
  return OffsetTransformer(config, rngs=nnx.Rngs(0))


def _prompt(batch=3, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, PROMPT), 0, VOCAB)


def _free(length):
  return schedule_from_segments([Segment(0, VOCAB, length)])


def _greedy_by_recomputation(model, prompt, prefix_length, length):
  """Reference: reruns the full model over the sequence each step and takes the argmax at the last written
  position. The sequence is zero-padded to its final length (one compile): later positions lie after the
  prefix, so the causal mask hides them from the positions read."""
  forward = jax.jit(lambda sequence: model(sequence, prefix_length))
  sequence = jnp.pad(prompt, ((0, 0), (0, length)))
  for i in range(prompt.shape[1], prompt.shape[1] + length):
    sequence = sequence.at[:, i].set(jnp.argmax(forward(sequence)[:, i - 1], axis=-1))
  return sequence[:, prompt.shape[1] :]


def test_greedy_kv_cache_decoding_equals_recomputation(model):
  prompt, prefix_length = _prompt(), jnp.array([PROMPT, 3, 0])
  expected = _greedy_by_recomputation(model, prompt, prefix_length, 10)
  got = generate(model, prompt, _free(10), GREEDY, jax.random.key(0), prefix_length=prefix_length)
  np.testing.assert_array_equal(got, expected)
  stepwise = generate_stepwise(
    model, prompt, _free(10), GREEDY, jax.random.key(0), prefix_length=prefix_length
  )
  np.testing.assert_array_equal(stepwise, expected)


def test_forced_tokens_and_ranges_hold_under_high_temperature(model):
  segments = [Segment(10, 20, 5), Segment(3, 4, 1), Segment(30, 50, 4, 1), Segment(4, 5, 1)]
  settings = SamplingSettings.create(temperature=[100.0, 50.0])
  tokens = np.asarray(
    generate(model, _prompt(batch=8), schedule_from_segments(segments), settings, jax.random.key(1))
  )
  assert ((tokens[:, :5] >= 10) & (tokens[:, :5] < 20)).all() and (tokens[:, 5] == 3).all()
  assert ((tokens[:, 6:10] >= 30) & (tokens[:, 6:10] < 50)).all() and (tokens[:, 10] == 4).all()
  assert len(np.unique(tokens[:, :5])) > 5  # really sampled, not greedy


def test_seeds_are_deterministic_and_distinct(model):
  prompt, schedule = _prompt(), _free(12)
  first = generate(model, prompt, schedule, HOT, jax.random.key(3))
  np.testing.assert_array_equal(first, generate(model, prompt, schedule, HOT, jax.random.key(3)))
  assert not np.array_equal(first, generate(model, prompt, schedule, HOT, jax.random.key(4)))


def test_truncation_to_one_candidate_is_greedy(model):
  prompt, schedule = _prompt(), _free(8)
  greedy = generate(model, prompt, schedule, GREEDY, jax.random.key(0))
  top_k_1 = SamplingSettings.create(temperature=1.0, top_k=1)
  np.testing.assert_array_equal(generate(model, prompt, schedule, top_k_1, jax.random.key(5)), greedy)
  tiny_p = SamplingSettings.create(temperature=1.0, top_p=1e-6)
  np.testing.assert_array_equal(generate(model, prompt, schedule, tiny_p, jax.random.key(6)), greedy)


def test_filters_on_fixed_logits():
  logits = jnp.log(jnp.array([[0.1, 0.5, 0.15, 0.25]]))
  kept = lambda x: np.isfinite(np.asarray(x))[0].tolist()
  assert kept(top_k_filter(logits, jnp.array(2), 3)) == [False, True, False, True]
  assert kept(top_k_filter(logits, jnp.array(0), 3)) == [True] * 4
  assert kept(top_p_filter(logits, jnp.array(0.6), 4)) == [False, True, False, True]
  assert kept(top_p_filter(logits, jnp.array(0.5), 4)) == [False, True, False, False]
  assert kept(top_p_filter(logits, jnp.array(1.0), 4)) == [True] * 4


def test_per_kind_settings(model):
  """Kind 0 greedy then kind 1 sampled: the greedy part is the greedy run's, the rest depends on the seed."""
  schedule = schedule_from_segments([Segment(0, VOCAB, 5, 0), Segment(0, VOCAB, 8, 1)])
  settings = SamplingSettings.create(temperature=[0.0, 1.0])
  greedy = generate(
    model, _prompt(), schedule, SamplingSettings.create(temperature=[0.0, 0.0]), jax.random.key(0)
  )
  a = generate(model, _prompt(), schedule, settings, jax.random.key(1))
  b = generate(model, _prompt(), schedule, settings, jax.random.key(2))
  np.testing.assert_array_equal(a[:, :5], greedy[:, :5])
  np.testing.assert_array_equal(b[:, :5], greedy[:, :5])
  assert not np.array_equal(a[:, 5:], b[:, 5:])


def test_guidance_by_batch_doubling(model):
  prompt, uncond, schedule = _prompt(seed=1), _prompt(seed=2), _free(10)
  key = jax.random.key(7)
  conditional = generate(model, prompt, schedule, HOT, key)
  scale_1 = SamplingSettings.create(temperature=1.0, guidance=1.0)
  np.testing.assert_array_equal(
    generate(model, prompt, schedule, scale_1, key, uncond_prompt=uncond), conditional
  )
  scale_0 = SamplingSettings.create(temperature=1.0, guidance=0.0)
  np.testing.assert_array_equal(
    generate(model, prompt, schedule, scale_0, key, uncond_prompt=uncond),
    generate(model, uncond, schedule, HOT, key),
  )
  guided = generate(
    model, prompt, schedule, SamplingSettings.create(temperature=0.0, guidance=3.0), key, uncond_prompt=uncond
  )
  assert not np.array_equal(guided, generate(model, prompt, schedule, GREEDY, key))


def test_batch_equals_per_example(model):
  prompt, schedule = _prompt(batch=3, seed=5), _free(9)
  keys = jax.random.split(jax.random.key(8), 3)
  batched = generate(model, prompt, schedule, HOT, keys)
  for i in range(3):
    np.testing.assert_array_equal(
      batched[i : i + 1], generate(model, prompt[i : i + 1], schedule, HOT, keys[i : i + 1])
    )


def test_prefix_inputs_reach_the_prefill_only(model):
  target = 17
  offset = jnp.zeros((3, VOCAB)).at[:, target].set(1e4)
  tokens = generate(model, _prompt(), _free(4), GREEDY, jax.random.key(0), prefix_inputs={"offset": offset})
  greedy = generate(model, _prompt(), _free(4), GREEDY, jax.random.key(0))
  assert (np.asarray(tokens[:, 0]) == target).all() and (np.asarray(greedy[:, 0]) != target).any()
  assert (np.asarray(tokens[:, 1:]) != target).any()  # later steps run without the offset
  guided = generate(
    model,
    _prompt(),
    _free(4),
    SamplingSettings.create(temperature=0.0, guidance=2.0),
    jax.random.key(0),
    uncond_prompt=_prompt(seed=3),
    prefix_inputs={"offset": offset},
    uncond_prefix_inputs={"offset": jnp.zeros_like(offset)},
  )
  assert (np.asarray(guided[:, 0]) == target).all()


def test_bad_inputs_raise(model):
  prompt, schedule, key = _prompt(), _free(4), jax.random.key(0)
  cases = [
    (dict(prompt=prompt[0]), "prompt"),
    (dict(prompt=prompt.astype(jnp.float32)), "prompt"),
    (dict(schedule=schedule_from_segments([(0, VOCAB + 1, 2)])), "lo < hi"),
    (dict(schedule=schedule_from_segments([(0, VOCAB, 2, 1)])), "kinds"),
    (dict(settings=SamplingSettings.create(temperature=-1.0)), "temperature"),
    (dict(settings=SamplingSettings.create(top_p=0.0)), "top_p"),
    (dict(settings=SamplingSettings.create(top_k=VOCAB + 1)), "top_k"),
    (dict(settings=SamplingSettings.create(guidance=2.0)), "uncond_prompt"),
    (dict(uncond_prompt=prompt[:, 1:]), "uncond_prompt"),
    (dict(prefix_length=jnp.array([1, 2])), "prefix_length"),
    (dict(prefix_length=jnp.array([1, 2, PROMPT + 1])), "prefix_length"),
    (dict(rng=jax.random.split(key, 2)), "rng"),
  ]
  for override, match in cases:
    args = dict(prompt=prompt, schedule=schedule, settings=HOT, rng=key)
    args.update(override)
    with pytest.raises(ValueError, match=match):
      generate(model, args.pop("prompt"), args.pop("schedule"), args.pop("settings"), args.pop("rng"), **args)
  with pytest.raises(ValueError, match="segments"):
    schedule_from_segments([(5, 5, 1)])
  with pytest.raises(ValueError, match="per-kind"):
    SamplingSettings.create(temperature=[1.0, 0.5], top_k=[1, 2, 3])
