import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.data import tokenizer_clips
from videopoet_jax.tokenizers import discriminator as disc_lib
from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training import video_tokenizer as trainer_lib


def _one_clip_batch(config):
  clip = tokenizer_clips.make_clip_fn(config.data, seed=0)(3)
  return np.repeat(clip[None], config.train.batch_size, axis=0)


def test_the_edge_loss_sees_outlines_not_flat_colour():
  square = jnp.zeros((1, 1, 16, 16, 3)).at[:, :, 4:12, 4:12].set(1.0)
  assert float(trainer_lib.edge_l1(square, square)) == 0.0
  assert float(trainer_lib.edge_l1(square + 0.3, square)) == pytest.approx(0.0, abs=1e-6)  # flat shift
  moved = jnp.roll(square, 1, axis=3)
  blurred = (square + moved) / 2
  assert float(trainer_lib.edge_l1(moved, square)) > float(trainer_lib.edge_l1(blurred, square)) > 0


def test_tiny_model_overfits_one_clip(tiny_video_config):
  config = tiny_video_config
  config.train.steps = 300
  config.loss.entropy_weight = 0.0
  trainer = trainer_lib.Trainer(config)
  state, batch = trainer.init(), trainer.put_batch(_one_clip_batch(config))
  psnrs = []
  for _ in range(config.train.steps):
    state, metrics = trainer.step_fn(state, batch)
    psnrs.append(float(metrics["psnr"]))
  assert np.isfinite(psnrs).all()
  assert max(psnrs[-10:]) > psnrs[0] + 8.0, (psnrs[0], psnrs[-10:])


def test_sharded_step_matches_single_device(tiny_video_config):
  batch = _one_clip_batch(tiny_video_config)
  results = []
  for shape in ((1, 1, 1), (-1, 1, 1)):
    tiny_video_config.mesh.shape = shape
    trainer = trainer_lib.Trainer(tiny_video_config)
    state, metrics = trainer.step_fn(trainer.init(), trainer.put_batch(batch))
    results.append((float(metrics["loss"]), jax.device_get(state.params)))
  assert len(trainer.mesh.devices.flat) == 8
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_adversarial_step_trains_the_discriminator(tiny_video_config):
  config = tiny_video_config
  config.loss.adversarial_weight = 0.1
  trainer = trainer_lib.Trainer(config)
  state = trainer.init()
  before = jax.device_get(state.disc_params)
  batch = trainer.put_batch(_one_clip_batch(config))
  state, first = trainer.step_fn(state, batch)
  state, second = trainer.step_fn(state, batch)  # the warmup schedule's learning rate is 0 at step 0
  for key in ("d_loss", "d_r1", "d_lecam", "g_adversarial"):
    assert np.isfinite(float(first[key])) and np.isfinite(float(second[key])), key
  assert float(first["d_r1"]) > 0  # step 0 applies the lazy R1 penalty ...
  assert float(second["d_r1"]) == 0  # ... and step 1 does not
  after = jax.device_get(state.disc_params)
  assert any(
    not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
  )


def test_blur_pool_matches_the_depthwise_conv_it_replaces():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8, 6, 3))
  taps = jnp.array([1.0, 2.0, 1.0])
  kernel = taps[:, None, None] * taps[None, :, None] * taps[None, None, :]
  kernel = jnp.broadcast_to((kernel / kernel.sum())[..., None, None], (3, 3, 3, 1, 3))
  reference = jax.lax.conv_general_dilated(
    x, kernel, (2, 2, 2), ((1, 1),) * 3, dimension_numbers=("NTHWC", "THWIO", "NTHWC"), feature_group_count=3
  )
  out = disc_lib.blur_pool_3d(x)
  assert out.shape == (2, 3, 4, 3, 3)
  np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)


def test_discriminator_patch_size_sees_every_pixel(tiny_video_config):
  disc = tiny_video_config.disc
  disc.patch_size = 4
  model = disc_lib.Discriminator(disc, rngs=nnx.Rngs(0))
  video = jnp.zeros((1, 5, 16, 16, 3))
  assert model(video).shape == (1,)
  grad = jax.grad(lambda v: model(v).sum())(video)
  assert (np.abs(np.asarray(grad)).sum(axis=(0, 1, 4)) > 0).all()  # no pixel column or row is skipped


def test_batch_must_divide_over_devices(tiny_video_config):
  tiny_video_config.mesh.shape = (-1, 1, 1)
  tiny_video_config.train.batch_size = 6
  with pytest.raises(ValueError, match="not divisible"):
    trainer_lib.Trainer(tiny_video_config)


def _final_params(workdir):
  module, _ = pretrained.load_video_tokenizer(str(workdir))
  from flax import nnx

  return jax.device_get(nnx.state(module, nnx.Param))


def test_interrupted_run_resumes_to_identical_weights(tiny_video_config, tmp_path):
  config = tiny_video_config
  config.train.steps, config.train.checkpoint_every, config.train.log_every = 6, 3, 3
  trainer_lib.train(config, str(tmp_path / "straight"))
  # A run killed after its step-3 checkpoint, then started again with no extra flag.
  config.train.steps = 3
  trainer_lib.train(config, str(tmp_path / "resumed"))
  config.train.steps = 6
  trainer_lib.train(config, str(tmp_path / "resumed"))
  for a, b in zip(
    jax.tree.leaves(_final_params(tmp_path / "straight")),
    jax.tree.leaves(_final_params(tmp_path / "resumed")),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b)
  steps = [json.loads(line)["step"] for line in open(tmp_path / "resumed" / "metrics.jsonl")]
  assert steps == [3, 6]
  assert {"codebook_usage", "perplexity", "psnr"} <= set(
    json.loads(open(tmp_path / "straight" / "metrics.jsonl").readline())
  )
  assert os.listdir(tmp_path / "straight" / "tensorboard")
  # Fine-tuning (train.init_from): a fresh run starts from the export's weights, EMA included.
  config.train.init_from = str(tmp_path / "straight")
  warm = trainer_lib.Trainer(config).init()
  exported = _final_params(tmp_path / "straight")
  for a, b, c in zip(
    jax.tree.leaves(exported), jax.tree.leaves(warm.params), jax.tree.leaves(warm.ema_params), strict=True
  ):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
  config.model.code_bits += 1
  with pytest.raises(ValueError, match="different architecture"):
    trainer_lib.Trainer(config).init()


def test_a_nonfinite_step_changes_nothing_and_a_run_of_them_stops_training(tiny_video_config, tmp_path):
  from videopoet_jax.training import loop

  config = tiny_video_config
  config.train.steps, config.train.log_every, config.train.max_nonfinite_steps = 12, 4, 3
  trainer = trainer_lib.Trainer(config)
  good = _one_clip_batch(config)
  bad = np.full_like(good, np.nan)
  state = trainer.init()
  before = jax.device_get((state.params, state.ema_params, state.opt_state))
  state, metrics = trainer.step_fn(state, trainer.put_batch(bad))
  assert int(metrics[loop.NONFINITE]) == 1 and int(state.step) == 1
  for a, b in zip(
    jax.tree.leaves(before), jax.tree.leaves((state.params, state.ema_params, state.opt_state)), strict=True
  ):
    np.testing.assert_array_equal(a, b)
  state, metrics = trainer.step_fn(state, trainer.put_batch(good))
  assert int(metrics[loop.NONFINITE]) == 0
  # Logged means leave the skipped step out.
  window = []
  for b in (bad, good):
    state, metrics = trainer.step_fn(state, trainer.put_batch(b))
    window.append(metrics)
  summary = trainer.summarize(window)
  assert np.isfinite(summary["loss"]) and summary[loop.NONFINITE] == 1
  # Three skipped steps in a row (steps 5-7) stop the run at the next log step.
  batches = lambda start: (bad if 5 <= step <= 7 else good for step in range(start + 1, 13))
  with pytest.raises(loop.TrainingDivergedError, match=r"3 steps in a row .*\(up to step 7\)"):
    loop.fit(trainer, str(tmp_path), batches)


def test_a_run_from_another_tokenizer_may_change_its_decoder_but_not_its_encoder(tiny_video_config, tmp_path):
  """A run from `train.init_from` whose decoder writes its patches through an MLP
  (configs/video_tokenizer.py:world_edges) starts from a tokenizer without one: the encoder and the decoder
  weights both share are copied, the others are fresh; a change that reaches the encoder is refused."""
  config = tiny_video_config
  source = trainer_lib.build_tokenizer(config, seed=3)
  pretrained.export(str(tmp_path / "source"), nnx.state(source, nnx.Param), config)
  config.train.init_from = str(tmp_path / "source")
  config.model.decoder_patch_hidden = 16
  trainer = trainer_lib.Trainer(config)
  started = nnx.merge(trainer.graphdef, jax.device_get(trainer.init().params))
  for part in (lambda m: m.encoder, lambda m: m.decoder.mid):
    for a, b in zip(*(jax.tree.leaves(nnx.state(part(m))) for m in (source, started)), strict=True):
      np.testing.assert_array_equal(a, b)
  assert started.decoder.conv_out.conv.kernel.value.shape[-1] == 16  # the hidden layer: fresh
  batch = _one_clip_batch(config)
  np.testing.assert_array_equal(np.asarray(source.encode(batch)), np.asarray(started.encode(batch)))
  config.model.base_channels = 16
  with pytest.raises(ValueError, match="base_channels"):
    trainer_lib.Trainer(config).init()


def test_a_decoder_only_run_keeps_every_id(tiny_video_config, tmp_path):
  """train.trainable="decoder": the encoder (and so the ids of any clip, what an LM was trained on) stays
  the source's, bit for bit, in the weights and in their EMA; the decoder trains."""
  config = tiny_video_config
  source = trainer_lib.build_tokenizer(config, seed=3)
  pretrained.export(str(tmp_path / "source"), nnx.state(source, nnx.Param), config)
  config.train.init_from, config.train.trainable = str(tmp_path / "source"), "decoder"
  trainer = trainer_lib.Trainer(config)
  state, batch = trainer.init(), trainer.put_batch(_one_clip_batch(config))
  for _ in range(3):
    state, _ = trainer.step_fn(state, batch)
  tuned = nnx.merge(trainer.graphdef, jax.device_get(trainer.export_params(state)))
  np.testing.assert_array_equal(np.asarray(source.encode(batch)), np.asarray(tuned.encode(batch)))
  for a, b in zip(*(jax.tree.leaves(nnx.state(m.encoder)) for m in (source, tuned)), strict=True):
    np.testing.assert_array_equal(a, b)
  decoders = (jax.tree.leaves(nnx.state(m.decoder)) for m in (source, tuned))
  assert any(not np.array_equal(a, b) for a, b in zip(*decoders, strict=True))
  config.train.init_from = ""
  with pytest.raises(ValueError, match="needs train.init_from"):
    trainer_lib.Trainer(config).init()
