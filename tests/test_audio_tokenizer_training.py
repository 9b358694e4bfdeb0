import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.data import audio_clips, media, shapes_world
from videopoet_jax.tokenizers import audio_discriminator, pretrained, rvq
from videopoet_jax.training import audio_tokenizer as trainer_lib

from conftest import REPO


def _one_clip_batch(config):
  clip = audio_clips.make_crop_fn(config.data, config.model.sample_rate, seed=0)(3)
  return np.repeat(clip[None], config.train.batch_size, axis=0)


def test_tiny_model_overfits_one_clip(tiny_audio_config):
  config = tiny_audio_config
  config.train.steps = 300
  config.rvq.dropout_probability = 0.0
  config.loss.waveform_weight = 100.0
  trainer = trainer_lib.Trainer(config)
  batch = trainer.put_batch(_one_clip_batch(config))
  state = trainer.init(batch)
  mels, si_snrs = [], []
  for _ in range(config.train.steps):
    state, metrics = trainer.step_fn(state, batch)
    mels.append(float(metrics["mel"]))
    si_snrs.append(float(metrics["si_snr"]))
  assert np.isfinite(mels).all()
  assert np.mean(mels[-10:]) < 0.5 * mels[0], (mels[0], mels[-10:])
  # The waveform comes back in phase (a misaligned decoder could not get above 0 dB): measured ~21 dB.
  assert np.mean(si_snrs[-10:]) > 10.0, si_snrs[-10:]


def test_first_batch_kmeans_sets_the_codebooks(tiny_audio_config):
  trainer = trainer_lib.Trainer(tiny_audio_config)
  batch = trainer.put_batch(_one_clip_batch(tiny_audio_config))
  state = trainer.init(batch)
  codebooks = nnx.merge(trainer.graphdef, state.params, state.codebooks).codebooks.value
  random = nnx.merge(*nnx.split(trainer_lib.build_tokenizer(tiny_audio_config)))
  assert not np.allclose(codebooks.codebooks, random.codebooks.value.codebooks)
  # Every level's k-means counts cover every frame of the batch once.
  frames = batch.shape[0] * random.geometry.frames(batch.shape[1])
  np.testing.assert_allclose(np.asarray(codebooks.cluster_size).sum(axis=1), frames)


def test_adversarial_step_trains_the_discriminators(tiny_audio_config):
  config = tiny_audio_config
  config.loss.adversarial_weight = 1.0
  trainer = trainer_lib.Trainer(config)
  batch = trainer.put_batch(_one_clip_batch(config))
  state = trainer.init(batch)
  before = jax.device_get(state.disc_params)
  state, first = trainer.step_fn(state, batch)
  state, second = trainer.step_fn(state, batch)  # the warmup schedule's learning rate is 0 at step 0
  for key in ("d_loss", "g_adversarial", "feature_matching"):
    assert np.isfinite(float(first[key])) and np.isfinite(float(second[key])), key
  after = jax.device_get(state.disc_params)
  assert any(
    not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
  )


@pytest.mark.parametrize("length", [64, 37])
def test_grouped_conv_matches_the_xla_grouped_conv(length):
  conv = audio_discriminator.GroupedConv1d(8, 16, 9, 4, 2, rngs=nnx.Rngs(0))
  conv.bias.value = jax.random.normal(jax.random.PRNGKey(1), conv.bias.value.shape)
  reference = nnx.Conv(8, 16, (9,), strides=(4,), feature_group_count=2, padding="SAME", rngs=nnx.Rngs(2))
  reference.kernel.value, reference.bias.value = conv.kernel.value, conv.bias.value
  x = jax.random.normal(jax.random.PRNGKey(3), (2, length, 8))
  assert conv(x).shape == (2, -(-length // 4), 16)
  np.testing.assert_allclose(conv(x), reference(x), rtol=1e-5, atol=1e-5)
  grad = lambda f: jax.grad(lambda v: jnp.sum(f(v) ** 2))(x)  # noqa: E731
  np.testing.assert_allclose(grad(conv), grad(reference), rtol=1e-4, atol=1e-4)


def test_sharded_step_matches_single_device(tiny_audio_config):
  # One initial state (k-means is chaotic in summation order), one step on 1 and on 8 devices: the loss,
  # the weights and the EMA codebooks (sums over the split batch) must agree.
  batch = _one_clip_batch(tiny_audio_config)
  single = trainer_lib.Trainer(tiny_audio_config)
  initial = jax.device_get(single.init(single.put_batch(batch)))
  tiny_audio_config.mesh.shape = (-1, 1, 1)
  sharded = trainer_lib.Trainer(tiny_audio_config)
  assert len(sharded.mesh.devices.flat) == 8
  results = []
  for trainer in (single, sharded):
    state = jax.device_put(initial, trainer.state_sharding)
    state, metrics = trainer.step_fn(state, trainer.put_batch(batch))
    results.append((float(metrics["loss"]), jax.device_get((state.params, state.codebooks))))
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _exported(workdir):
  module, _ = pretrained.load_audio_tokenizer(str(workdir))
  return jax.device_get(nnx.state(module, pretrained.EXPORTED_VARIABLES))


def test_interrupted_run_resumes_to_identical_weights_and_codebooks(tiny_audio_config, tmp_path):
  config = tiny_audio_config
  config.train.steps, config.train.checkpoint_every, config.train.log_every = 6, 3, 3
  config.rvq.restart_every = 2
  trainer_lib.train(config, str(tmp_path / "straight"))
  config.train.steps = 3  # a run killed after its step-3 checkpoint, then started again
  trainer_lib.train(config, str(tmp_path / "resumed"))
  config.train.steps = 6
  trainer_lib.train(config, str(tmp_path / "resumed"))
  straight, resumed = _exported(tmp_path / "straight"), _exported(tmp_path / "resumed")
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  record = json.loads(open(tmp_path / "straight" / "metrics.jsonl").readline())
  assert {"mel", "si_snr", "usage_l0", "perplexity_l2", "restarted_codes"} <= set(record)
  # Fine-tuning (train.init_from): the weights (EMA included) and codebooks start from the export's.
  config.train.init_from = str(tmp_path / "straight")
  trainer = trainer_lib.Trainer(config)
  warm = trainer.init(_one_clip_batch(config))
  started = jax.device_get(trainer.export_params(warm))
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(started), strict=True):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(jax.tree.leaves(warm.params)[0], jax.tree.leaves(warm.ema_params)[0])


def test_a_decoder_only_run_keeps_every_id(tiny_audio_config, tmp_path):
  """train.trainable="decoder" (configs/audio_tokenizer.py:shapes_decoder): the encoder and the codebooks
  stay the source's, so the ids of any clip stay what an LM was trained on; the decoder trains."""
  config = tiny_audio_config
  config.train.steps, config.train.checkpoint_every, config.train.log_every = 3, 3, 3
  trainer_lib.train(config, str(tmp_path / "source"))
  config.train.init_from = str(tmp_path / "source")
  config.train.trainable = "decoder"
  config.rvq.restart_every = 1  # a dead-code restart would change the codebooks here if it ran
  trainer_lib.train(config, str(tmp_path / "decoder"))
  (source, _), (tuned, _) = (
    pretrained.load_audio_tokenizer(str(tmp_path / d)) for d in ("source", "decoder")
  )
  clips = _one_clip_batch(config)
  np.testing.assert_array_equal(np.asarray(source.encode(clips)), np.asarray(tuned.encode(clips)))
  frozen = [(nnx.state(m.encoder), m.codebooks.value) for m in (source, tuned)]
  for a, b in zip(*(jax.tree.leaves(f) for f in frozen), strict=True):
    np.testing.assert_array_equal(a, b)
  decoders = jax.tree.leaves(nnx.state(source.decoder)), jax.tree.leaves(nnx.state(tuned.decoder))
  assert any(not np.array_equal(a, b) for a, b in zip(*decoders, strict=True))
  config.train.init_from = ""
  with pytest.raises(ValueError, match="needs train.init_from"):
    trainer_lib.Trainer(config).init(_one_clip_batch(config))


def _eval(*args):
  return subprocess.run(
    [sys.executable, str(REPO / "tokenizers" / "eval.py"), *args], capture_output=True, text=True, cwd=REPO
  )


def test_eval_cli_round_trips_a_whole_file(tmp_path, tiny_audio_config):
  tiny_audio_config.train.steps = 2
  trainer_lib.train(tiny_audio_config, str(tmp_path / "wd"))
  wave = np.concatenate([shapes_world.render(s)["audio"] for s in (1, 2)])[:50_000]
  media.write_audio(str(tmp_path / "in.wav"), wave, 16_000)
  out = _eval(
    f"--audio={tmp_path / 'in.wav'}", f"--checkpoint={tmp_path / 'wd'}", f"--output={tmp_path / 'o.wav'}"
  )
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  hop = 40  # tiny strides (2, 4, 5)
  window = 34_000 // hop * hop
  assert result["windows"] == -(-50_000 // window) and result["seconds"] == pytest.approx(50_000 / 16_000)
  assert result["kbps"] == pytest.approx(3 * 4 * 16_000 / hop / 1000)
  assert result["tokens_per_second"] == pytest.approx(3 * 16_000 / hop)
  assert result["mel_distance"] > 0 and np.isfinite(result["si_snr"]) and result["bandlimit_mel_distance"] > 0
  assert result["floored_mel_distance"] > 0 and result["bandlimit_floored_mel_distance"] > 0
  assert media.read_audio(str(tmp_path / "o.wav"), 16_000).shape == (50_000,)
  fewer = _eval(f"--audio={tmp_path / 'in.wav'}", f"--checkpoint={tmp_path / 'wd'}", "--levels=1")
  assert json.loads(fewer.stdout.strip().splitlines()[-1])["kbps"] == pytest.approx(result["kbps"] / 3)
  (tmp_path / "noise.wav").write_bytes(b"RIFF garbage")
  for bad in ([f"--audio={tmp_path / 'noise.wav'}"], [f"--audio={tmp_path / 'in.wav'}", "--levels=4"]):
    out = _eval(*bad, f"--checkpoint={tmp_path / 'wd'}")
    assert out.returncode != 0 and out.stderr.strip().splitlines()[-1].startswith("error:"), out.stderr


def test_eval_cli_needs_exactly_one_input():
  out = _eval("--audio=a.wav", "--video=b.mp4")
  assert out.returncode != 0 and "exactly one of --video, --audio" in out.stderr


def test_codebook_variable_is_exported_not_trained(tiny_audio_config):
  model = trainer_lib.build_tokenizer(tiny_audio_config)
  params = nnx.state(model, nnx.Param)
  exported = nnx.state(model, pretrained.EXPORTED_VARIABLES)
  codebooks = nnx.state(model, rvq.CodebookVariable)
  assert len(jax.tree.leaves(codebooks)) == 3  # codebooks, cluster sizes, sums: no gradients reach them
  assert len(jax.tree.leaves(exported)) == len(jax.tree.leaves(params)) + 3
