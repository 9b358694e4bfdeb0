import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.tokenizers import refine
from videopoet_jax.tokenizers.layers import depth_to_space, space_to_depth
from videopoet_jax.tokenizers.video import VideoGeometry, VideoTokenizer


@pytest.fixture(
  params=[{}, {"decoder_previous_codes": True}, {"decoder_patch_hidden": 16}],
  ids=["own_codes", "previous_codes", "patch_mlp"],
)
def tokenizer(request, tiny_video_config):
  model_config = tiny_video_config.model.copy_and_resolve_references()
  model_config.update(request.param)
  model = VideoTokenizer(model_config, rngs=nnx.Rngs(0))

  # Random-init AdaGN maps are zero; perturb every parameter so no path is trivially constant.
  @jax.jit
  def perturb(params):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    leaves = [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, leaves)

  nnx.update(model, perturb(nnx.state(model, nnx.Param)))
  return model


def _video(config, key=0, batch=2, frames=None):
  frames = frames or config.data.frames
  return jax.random.uniform(
    jax.random.PRNGKey(key), (batch, frames, config.data.size, config.data.size, 3), minval=-1, maxval=1
  )


@pytest.mark.parametrize("variant", ["tiny", "demo", "shapes", "world", "world_table", "faithful64", "paper"])
def test_geometry_of_every_variant(variant):
  from conftest import load_config

  config = load_config("video_tokenizer", variant)
  geometry = VideoGeometry.from_config(config.model)
  assert geometry.spatial_factor == 8
  assert geometry.temporal_factor == 4
  t, h, w = geometry.latent_shape(config.data.frames, config.data.size, config.data.size)
  assert geometry.video_shape(t, h, w) == (config.data.frames, config.data.size, config.data.size)
  assert geometry.latent_shape(1, 64, 64) == (1, 8, 8)


def test_a_local_encoder_gives_a_flat_region_one_id_and_keeps_changes_in_their_patch(tiny_video_config):
  model_config = tiny_video_config.model.copy_and_resolve_references()
  model_config.update(
    patch_size=8, spatial_downsample=(False, False), spatial_padding="edge", norm="channel",
    encoder_spatial_kernel=1,
  )  # fmt: skip
  model = VideoTokenizer(model_config, rngs=nnx.Rngs(0))
  flat = jnp.full((1, 9, 16, 16, 3), 0.3)
  z = model.encode_latents(flat)
  np.testing.assert_allclose(z, jnp.broadcast_to(z[:, :, :1, :1], z.shape), atol=1e-6)
  changed = model.encode_latents(flat.at[:, 6, 9:12, 2:5].set(-0.8))  # frame 6 (latent 2), patch (1, 0)
  moved = np.abs(np.asarray(changed - z)).max(axis=-1)[0] > 1e-6  # [t, h, w]
  expected = np.zeros((3, 2, 2), bool)
  expected[2, 1, 0] = True
  np.testing.assert_array_equal(moved, expected)
  model_config.spatial_downsample = (True, False)
  with pytest.raises(ValueError, match="skip pixels"):
    VideoTokenizer(model_config, rngs=nnx.Rngs(0))


def test_encode_decode_shapes(tokenizer, tiny_video_config):
  video = _video(tiny_video_config, frames=9)
  ids = tokenizer.encode(video)
  assert ids.shape == (2, 3, 2, 2) and ids.dtype == jnp.int32
  assert int(ids.min()) >= 0 and int(ids.max()) < 2**tiny_video_config.model.code_bits
  recon = tokenizer.decode(ids)
  assert recon.shape == video.shape
  assert float(recon.min()) >= -1 and float(recon.max()) <= 1
  np.testing.assert_array_equal(tokenizer.codes_to_ids(tokenizer.ids_to_codes(ids)), ids)


def test_encoder_is_causal(tokenizer, tiny_video_config):
  video = _video(tiny_video_config, frames=9)
  z = tokenizer.encode_latents(video)
  # Latent j covers frames up to 4j: changing frames 5.. must leave latents 0 and 1 untouched.
  changed = video.at[:, 5:].set(_video(tiny_video_config, key=7, frames=9)[:, 5:])
  z_changed = tokenizer.encode_latents(changed)
  np.testing.assert_array_equal(z_changed[:, :2], z[:, :2])
  assert not np.allclose(z_changed[:, 2], z[:, 2])


def test_decoder_is_causal(tokenizer, tiny_video_config):
  ids = tokenizer.encode(_video(tiny_video_config, frames=9))
  other = ids.at[:, 2].set((ids[:, 2] + 1) % 2**tiny_video_config.model.code_bits)
  a, b = tokenizer.decode(ids), tokenizer.decode(other)
  np.testing.assert_array_equal(a[:, :5], b[:, :5])
  assert not np.allclose(a[:, 5:], b[:, 5:])


def test_image_encodes_as_first_latent_frame(tokenizer, tiny_video_config):
  video = _video(tiny_video_config, frames=9)
  image_latents = tokenizer.encode_latents(video[:, :1])
  np.testing.assert_allclose(image_latents[:, 0], tokenizer.encode_latents(video)[:, 0], atol=1e-5)
  np.testing.assert_array_equal(tokenizer.encode(video[:, :1])[:, 0], tokenizer.encode(video)[:, 0])


# Fewer steps than refine.DEFAULT_STEPS: enough to gain on the tiny model.
REFINE_STEPS, REFINE_LEARNING_RATE = 20, refine.DEFAULT_LEARNING_RATE


def _clip_mse(tokenizer, video, ids):
  return np.mean((np.asarray(tokenizer.decode(ids)) - np.asarray(video)) ** 2, axis=(1, 2, 3, 4))


def test_refined_ids_reconstruct_better(tokenizer, tiny_video_config):
  video = _video(tiny_video_config, frames=9)
  ids = tokenizer.encode(video)
  refined = refine.encode_refined(tokenizer, video, REFINE_STEPS, REFINE_LEARNING_RATE)
  assert refined.shape == ids.shape and refined.dtype == ids.dtype
  # The search starts from the encoder's codes and keeps the best iterate: no gain means it is broken.
  assert np.all(_clip_mse(tokenizer, video, refined) < _clip_mse(tokenizer, video, ids))
  np.testing.assert_array_equal(refine.encode_refined(tokenizer, video, 0, REFINE_LEARNING_RATE), ids)


@pytest.mark.parametrize("flip_rounds", [0, 1], ids=["adam", "adam_and_flips"])
def test_refined_encoding_is_causal_and_image_is_first_latent(tokenizer, tiny_video_config, flip_rounds):
  def search(video):
    return refine.encode_refined(tokenizer, video, REFINE_STEPS, REFINE_LEARNING_RATE, flip_rounds)

  video = _video(tiny_video_config, frames=9)
  ids = search(video)
  changed = video.at[:, 5:].set(_video(tiny_video_config, key=7, frames=9)[:, 5:])
  ids_changed = search(changed)
  np.testing.assert_array_equal(ids_changed[:, :2], ids[:, :2])
  assert not np.array_equal(ids_changed[:, 2], ids[:, 2])
  np.testing.assert_array_equal(search(video[:, :1])[:, 0], ids[:, 0])


@pytest.mark.parametrize("steps", [0, REFINE_STEPS], ids=["from_encoder", "after_adam"])
def test_bit_flips_never_raise_the_mse_and_find_gains(tokenizer, tiny_video_config, steps):
  # Images: one latent frame, so the flips' per-frame guarantee is the whole clip's.
  images = _video(tiny_video_config, batch=4, frames=1)
  before = refine.encode_refined(tokenizer, images, steps, REFINE_LEARNING_RATE)  # steps=0: the encoder's
  after = refine.encode_refined(tokenizer, images, steps, REFINE_LEARNING_RATE, flip_rounds=2)
  mse_before, mse_after = _clip_mse(tokenizer, images, before), _clip_mse(tokenizer, images, after)
  assert np.all(mse_after <= mse_before) and np.any(mse_after < mse_before)


def test_refinement_rejects_bad_settings(tokenizer, tiny_video_config):
  video = _video(tiny_video_config, frames=5)
  with pytest.raises(ValueError, match="steps >= 0, learning_rate > 0 and flip_rounds >= 0"):
    refine.encode_refined(tokenizer, video, -1, REFINE_LEARNING_RATE)
  with pytest.raises(ValueError, match="flip_rounds >= 0"):
    refine.encode_refined(tokenizer, video, REFINE_STEPS, REFINE_LEARNING_RATE, flip_rounds=-1)
  with pytest.raises(ValueError, match="1 \\+ 4k frames"):
    refine.encode_refined(tokenizer, video[:, :4], REFINE_STEPS, REFINE_LEARNING_RATE)


def test_space_depth_round_trip():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 8, 12, 5))
  np.testing.assert_array_equal(depth_to_space(space_to_depth(x, 4), 1, 4), x)


@pytest.mark.parametrize(
  "make, message",
  [
    (lambda v: v[0], r"\[B, T, H, W, 3\]"),
    (lambda v: v * 3.0, r"\[-1, 1\]"),
    (lambda v: ((v + 1) * 127).astype(jnp.uint8), "float"),
    (lambda v: v[:, :4], "1 \\+ 4k frames"),
    (lambda v: v[:, :, :12, :12], "divisible by 8"),
  ],
)
def test_bad_videos_are_rejected(tokenizer, tiny_video_config, make, message):
  with pytest.raises(ValueError, match=message):
    tokenizer.encode(make(_video(tiny_video_config)))


def test_bad_ids_are_rejected(tokenizer, tiny_video_config):
  bits = tiny_video_config.model.code_bits
  with pytest.raises(ValueError, match=r"\[0, 256\)"):
    tokenizer.decode(jnp.full((1, 2, 2, 2), 2**bits, jnp.int32))
  with pytest.raises(ValueError, match="integers"):
    tokenizer.decode(jnp.zeros((1, 2, 2, 2), jnp.float32))
