import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from videopoet_jax import sharding, tasks
from videopoet_jax.data import lm_batches, token_shards
from videopoet_jax.model import attention_kernels
from videopoet_jax.tasks import registry, sequence
from videopoet_jax.training import checkpoints, lm, loop

from conftest import REPO

GOLDEN_SHARDINGS = REPO / "tests" / "golden" / "lm_tiny_param_shardings_2x2x2.json"


def _mesh(shape):
  return sharding.make_mesh(ml_collections.ConfigDict({"shape": shape, "axes": ("data", "fsdp", "tensor")}))


def _params(state):
  return jax.device_get(state.params)


def _assert_trees_close(a, b, **tolerance):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **tolerance)


def test_sharded_accumulated_and_splash_steps_equal_the_single_device_step(tiny_lm_config):
  single = lm.Trainer(tiny_lm_config, mesh=_mesh((1, 1, 1)))
  sharded = lm.Trainer(tiny_lm_config, mesh=_mesh((2, 2, 2)))
  accumulating = tiny_lm_config.copy_and_resolve_references()
  accumulating.train.microbatches = 2
  accumulated = lm.Trainer(accumulating, mesh=_mesh((2, 2, 2)))
  # Splash kernels (interpreted on CPU) per shard under shard_map: batch over (data, fsdp), heads over tensor.
  on_splash = tiny_lm_config.copy_and_resolve_references()
  on_splash.model.attention = "splash"
  on_splash.model.attention_chunk = attention_kernels.SPLASH_TILE_MULTIPLE
  splash = lm.Trainer(on_splash, mesh=_mesh((2, 2, 2)))
  host_batch = sharded.batches.batch(1)  # a batch size the 4 data-parallel devices x 2 microbatches divide
  results = []
  for trainer in (single, sharded, accumulated, splash):
    state, metrics = trainer.step_fn(trainer.init(), trainer.put_batch(host_batch))
    state, metrics = trainer.step_fn(state, trainer.put_batch(host_batch))
    results.append((_params(state), lm.summarize_sums([metrics])))
  (params_1, metrics_1), *others = results
  for params, metrics in others:
    assert metrics_1["loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    _assert_trees_close(params_1, params, rtol=1e-4, atol=1e-6)
  # The sharded state really is sharded: the embedding is split over fsdp and tensor.
  embedding = sharded.state_sharding.params["embed"]["embedding"]
  assert embedding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")


def test_parameter_shardings_match_the_golden_description(tiny_lm_config):
  trainer = lm.Trainer(tiny_lm_config, mesh=_mesh((2, 2, 2)), data=False)
  described = sharding.describe_shardings(trainer.state_sharding.params)
  assert described == json.loads(GOLDEN_SHARDINGS.read_text())


def test_restore_onto_a_different_mesh_gives_the_same_parameters(tiny_lm_config, tmp_path):
  tiny_lm_config.train.steps = 3
  trainer = lm.Trainer(tiny_lm_config, mesh=_mesh((2, 2, 2)))
  saved = _params(
    loop.fit(trainer, str(tmp_path), lambda start: map(trainer.batches.batch, range(start + 1, 4)))
  )
  other = lm.Trainer(tiny_lm_config, mesh=_mesh((1, 4, 2)), data=False)
  manager = checkpoints.make_manager(str(tmp_path), 3)
  restored, step = checkpoints.restore(manager, other.abstract_state, tiny_lm_config)
  assert step == 3
  for array, wanted in zip(
    jax.tree.leaves(restored.params), jax.tree.leaves(other.state_sharding.params), strict=True
  ):
    assert array.sharding == wanted
  _assert_trees_close(saved, _params(restored), rtol=0, atol=0)
  # A warm start (train.init_from) takes the export's parameters onto this mesh, with a fresh optimizer.
  warm = ml_collections.ConfigDict(tiny_lm_config.to_dict())
  warm.train.init_from = str(tmp_path)
  started = lm.Trainer(warm, mesh=_mesh((1, 4, 2)), data=False).init()
  _assert_trees_close(saved, _params(started), rtol=0, atol=0)
  assert int(started.step) == 0
  warm.model.width *= 2
  with pytest.raises(ValueError, match="different architecture"):
    lm.Trainer(warm, mesh=_mesh((1, 4, 2)), data=False).init()
  # It may add video positions (model.video_grid) to a model trained without: every other weight is the
  # export's, the new rows start at zero.
  warm.model.width //= 2
  warm.model.video_grid = tuple(warm.layout.latent_shape[1:])
  warm.model.video_cell_ids = tasks.vocabulary(warm).video_cell_ranges()
  gridded = lm.Trainer(warm, mesh=_mesh((1, 4, 2)), data=False).init().params
  positions = gridded.pop("video_positions")
  _assert_trees_close(saved, jax.tree.map(np.asarray, gridded), rtol=0, atol=0)
  assert all(not np.asarray(x).any() for x in jax.tree.leaves(positions))


def test_tiny_model_overfits_a_handful_of_sequences_of_every_task(tiny_lm_config):
  config = tiny_lm_config
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 1e-2, 10, 300
  trainer = lm.Trainer(config, data=False)
  records = [token_shards.read_shard(p)[0] for p in token_shards.shard_paths(config.data.tokens_dir, "train")]
  masks = json.load(open(os.path.join(config.data.tokens_dir, "manifest.json")))["token_masks"]
  layout = sequence.Layout.from_config(config.layout, masks)
  sequences = [
    sequence.build(registry.TASKS[n], records[0], trainer.vocab, layout) for n in registry.TASK_NAMES
  ]
  length = max(len(s.tokens) for s in sequences)
  batch = sequence.collate(sequences, list(range(len(sequences))), length, trainer.vocab, layout)
  batch = trainer.put_batch(batch)
  state = trainer.init()
  for _ in range(config.train.steps):
    state, metrics = trainer.step_fn(state, batch)
  summary = lm.summarize_sums([metrics])
  assert summary["loss"] < 0.05, summary
  assert all(summary[f"accuracy/{name}"] == 1.0 for name in registry.TASK_NAMES), summary


def test_nonfinite_steps_are_skipped_and_stop_the_run_keeping_the_last_good_checkpoint(
  tiny_lm_config, tmp_path
):
  config = tiny_lm_config
  config.train.steps, config.train.checkpoint_every, config.train.max_nonfinite_steps = 30, 5, 3
  trainer = lm.Trainer(config)
  poisoned_from = 7

  def batches(start):
    for step in range(start + 1, config.train.steps + 1):
      batch = trainer.batches.batch(step)
      if step >= poisoned_from:  # an id outside the vocabulary embeds as NaN
        batch.tokens[:, 1] = config.model.vocab_size + 1
      yield batch

  with pytest.raises(loop.TrainingDivergedError, match="3 steps in a row"):
    loop.fit(trainer, str(tmp_path), batches)
  manager = checkpoints.make_manager(str(tmp_path), 3)
  assert manager.latest_step() == 5
  state, _ = checkpoints.restore(manager, trainer.abstract_state, config)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(state)))
  # One skipped step leaves the state as it was and counts itself.
  good = trainer.batches.batch(1)
  bad = trainer.batches.batch(1)
  bad.tokens[:, 1] = config.model.vocab_size + 1
  before = trainer.init()
  expected = _params(before)
  after, metrics = trainer.step_fn(before, trainer.put_batch(bad))
  _assert_trees_close(expected, _params(after), rtol=0, atol=0)
  assert int(after.nonfinite_in_a_row) == 1 and int(after.nonfinite_total) == 1
  after, _ = trainer.step_fn(after, trainer.put_batch(good))
  assert int(after.nonfinite_in_a_row) == 0 and int(after.nonfinite_total) == 1


def test_a_stop_signal_saves_the_step_it_stops_at(tiny_lm_config, tmp_path):
  """A SIGTERM that arrives while step 5 is logged (after that step's save decision) stops the run after
  step 6, which is saved."""
  config = tiny_lm_config
  config.train.steps, config.train.checkpoint_every, config.train.log_every = 20, 100, 5
  trainer = lm.Trainer(config)
  summarize = trainer.summarize

  def summarize_then_signal(window):
    os.kill(os.getpid(), signal.SIGTERM)
    return summarize(window)

  trainer.summarize = summarize_then_signal
  batches = lambda start: (trainer.batches.batch(step) for step in range(start + 1, config.train.steps + 1))
  state = loop.fit(trainer, str(tmp_path), batches)
  assert int(state.step) == 6
  assert checkpoints.make_manager(str(tmp_path), 3).latest_step() == 6


def test_token_shards_that_do_not_fit_the_config_are_refused(tiny_lm_config):
  config = tiny_lm_config
  config.vocab.video_bits = 5
  config.model.vocab_size = lm.tasks.vocabulary(config).size
  with pytest.raises(ValueError, match="video ids have 4 bits"):
    lm.Trainer(config)
  config = tiny_lm_config
  config.vocab.video_bits = 4
  config.model.vocab_size = lm.tasks.vocabulary(config).size
  manifest = token_shards.read_manifest(config.data.tokens_dir)
  manifest["streams"].remove("audio")
  with pytest.raises(ValueError, match="weights.video_to_audio=0"):
    lm_batches.check_manifest(config, manifest, "tokens")


def _losses(workdir):
  return {
    r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(workdir, "metrics.jsonl"))) if "loss" in r
  }


def test_kill_and_restart_resumes_with_the_losses_of_an_uninterrupted_run(tiny_lm_config, tmp_path):
  overrides = {
    "data.tokens_dir": tiny_lm_config.data.tokens_dir,
    "mesh.shape": "(1,1,1)",
    "train.steps": 400,
    "train.checkpoint_every": 20,
    "train.log_every": 10,
    "train.eval_every": 0,
  }
  command = [sys.executable, "train.py", "--config=configs/lm.py:tiny"] + [
    f"--config.{k}={v}" for k, v in overrides.items()
  ]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  run = lambda workdir: subprocess.run(
    command + [f"--workdir={workdir}"], cwd=REPO, env=env, capture_output=True, text=True, check=True
  )
  killed = tmp_path / "killed"
  process = subprocess.Popen(command + [f"--workdir={killed}"], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
  manager = checkpoints.make_manager(str(killed), 3)
  deadline = time.time() + 240
  while time.time() < deadline and (manager.latest_step() or 0) < 40:
    time.sleep(0.2)
    manager.reload()
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  manager.reload()
  resumed_from = manager.latest_step()
  assert resumed_from is not None and resumed_from < 400, "the run was not killed mid-training"
  # Resuming under a config that computes another run is refused, naming the keys (before any work).
  changed = subprocess.run(
    [*command, f"--workdir={killed}", "--config.train.learning_rate=0.002", "--config.seed=1"],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
  )
  last = changed.stderr.strip().splitlines()[-1]
  assert changed.returncode == 1 and "seed: 0 -> 1" in last and "train.learning_rate" in last, last
  run(killed)
  run(tmp_path / "straight")
  straight, resumed = _losses(tmp_path / "straight"), _losses(killed)
  later = [s for s in straight if s > resumed_from]
  assert later and max(straight) == 400
  np.testing.assert_allclose([resumed[s] for s in later], [straight[s] for s in later], rtol=1e-6)


def test_chunked_losses_equal_full_logits(tiny_lm_config):
  config = tiny_lm_config
  config.model.logits_chunk = 5  # does not divide the length: the last chunk is padded
  model = lm.build_model(config)
  tokens = jax.random.randint(jax.random.key(0), (2, 23), 0, config.model.vocab_size)
  prefix = jnp.array([4, 9])
  nll, correct = model.token_losses(tokens, prefix)
  logits = model(tokens, prefix)[:, :-1]
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  expected = -jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1)[..., 0]
  np.testing.assert_allclose(nll, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(correct, (logits.argmax(-1) == tokens[:, 1:]).astype(np.float32))
  # and the gradient: the chunked logsumexp form against log_softmax of the full logits
  graphdef, params = nnx.split(model, nnx.Param)

  def chunked(params):
    return nnx.merge(graphdef, params, copy=True).token_losses(tokens, prefix)[0].sum()

  def full(params):
    logits = nnx.merge(graphdef, params, copy=True)(tokens, prefix)[:, :-1]
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], axis=-1).sum()

  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
    jax.grad(chunked)(params),
    jax.grad(full)(params),
  )


def test_loss_positions_compute_only_the_outputs_losses(tiny_lm_config):
  model = lm.build_model(tiny_lm_config)
  tokens = jax.random.randint(jax.random.key(1), (2, 23), 0, tiny_lm_config.model.vocab_size)
  prefix = jnp.array([4, 19])  # the second row ends 4 targets into the 8 asked for
  span = 8
  targets = np.arange(22)
  kept = (targets[None] >= prefix[:, None] - 1) & (targets[None] < prefix[:, None] - 1 + span)
  nll, correct = model.token_losses(tokens, prefix)
  picked_nll, picked_correct = model.token_losses(tokens, prefix, loss_positions=span)
  np.testing.assert_allclose(picked_nll, np.where(kept, nll, 0.0), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(picked_correct, np.where(kept, correct, 0.0))
  graphdef, params = nnx.split(model, nnx.Param)
  masked = lambda positions: (
    lambda p: (
      nnx.merge(graphdef, p, copy=True).token_losses(tokens, prefix, loss_positions=positions)[0] * kept
    ).sum()
  )
  _assert_trees_close(jax.grad(masked(span))(params), jax.grad(masked(None))(params), rtol=1e-4, atol=1e-6)


def test_trainer_loss_spans_change_no_loss_or_gradient(tiny_lm_config):
  trainer = lm.Trainer(tiny_lm_config)
  spans = trainer.batches.loss_spans()
  assert len(spans) == len(trainer.batches.mixture.groups)
  params = trainer.init().params
  grad_fn = jax.value_and_grad(lm.loss_and_sums, has_aux=True)
  seen = set()
  for step in range(40):
    batch = trainer.batches.batch(step)
    if batch.tokens.shape[1] in seen:
      continue
    seen.add(batch.tokens.shape[1])
    rows = trainer.put_batch(batch)
    (loss, sums), grads = grad_fn(params, trainer.graphdef, rows, trainer.vocab)
    (span_loss, span_sums), span_grads = grad_fn(params, trainer.graphdef, rows, trainer.vocab, None, spans)
    assert span_loss == pytest.approx(float(loss), rel=1e-5)
    _assert_trees_close(sums, span_sums, rtol=1e-5, atol=1e-5)
    _assert_trees_close(grads, span_grads, rtol=1e-4, atol=1e-6)
  assert len(seen) > 1, "every batch had one length: the test saw one group"


def _loss_and_grads(config, batch, params=None):
  trainer = lm.Trainer(config, data=False)
  params = trainer.init().params if params is None else params
  grad_fn = jax.value_and_grad(lm.loss_and_sums, has_aux=True)
  (loss, _), grads = grad_fn(params, trainer.graphdef, trainer.put_batch(batch), trainer.vocab)
  return float(loss), grads, params


def test_remat_changes_no_loss_or_gradient(tiny_lm_config):
  batch = lm.Trainer(tiny_lm_config).batches.batch(1)
  loss, grads, params = _loss_and_grads(tiny_lm_config, batch)
  tiny_lm_config.model.remat = "full"
  remat_loss, remat_grads, _ = _loss_and_grads(tiny_lm_config, batch, params)
  assert remat_loss == pytest.approx(loss, rel=1e-6)
  _assert_trees_close(grads, remat_grads, rtol=1e-5, atol=1e-7)


def test_external_text_embeddings_are_projected_into_the_prefix(tiny_lm_config):
  config = tiny_lm_config
  config.model.text_embedding_dim = 6
  trainer = lm.Trainer(config, data=False)
  record = token_shards.read_shard(token_shards.shard_paths(config.data.tokens_dir, "train")[0])[0]
  record = {k: v for k, v in record.items() if k != "text"}
  record["text_embedding"] = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
  layout = sequence.Layout.from_config(config.layout)
  seq = sequence.build(registry.TASKS["text_to_video"], record, trainer.vocab, layout)
  batch = sequence.collate([seq] * 2, [1, 1], len(seq.tokens), trainer.vocab, layout)
  loss, grads, params = _loss_and_grads(config, batch)
  assert np.abs(np.asarray(grads["text_projection"]["kernel"])).sum() > 0  # the projection is trained
  batch.text_embedding = batch.text_embedding * 2
  assert _loss_and_grads(config, batch, params)[0] != pytest.approx(loss, rel=1e-6)


def test_a_run_whose_shards_name_a_missing_tokenizer_stops_before_its_first_step(tiny_lm_config, tmp_path):
  """The export copies the tokenizers that made the shards' ids: one that is gone is named at once, not at
  the first checkpoint's export."""
  tokens_dir = tiny_lm_config.data.tokens_dir
  manifest = token_shards.read_manifest(tokens_dir)
  manifest["video_tokenizer"]["path"] = str(tmp_path / "moved_away")
  token_shards.write_manifest(tokens_dir, manifest)
  with pytest.raises(FileNotFoundError, match="names the video_tokenizer that made its ids"):
    lm.train(tiny_lm_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_content_init_gives_video_ids_that_draw_alike_embeddings_alike(
  tiny_lm_config, tiny_video_config, tmp_path
):
  """`train.video_embedding_init="content"`: the video ids' embedding rows are a projection of the shards'
  patch table's pixels (equal patches -> equal rows, at the init's scale); every other row is the plain
  init's; a learned tokenizer (no per-id pixels) is refused."""
  from videopoet_jax.tokenizers import patch_table
  from videopoet_jax.training import patch_table as patch_table_training

  table_config = tiny_video_config
  table_config.model.update(kind=patch_table.KIND, patch_size=8, spatial_downsample=(False, False))
  table_config.model.code_bits = tiny_lm_config.vocab.video_bits
  table_config.data.num_clips = 1
  tokenizer = patch_table_training.build(table_config, str(tmp_path / "table"))
  tokens_dir = tiny_lm_config.data.tokens_dir
  manifest = token_shards.read_manifest(tokens_dir)
  manifest["video_tokenizer"]["path"] = str(tmp_path / "table")
  token_shards.write_manifest(tokens_dir, manifest)
  plain = _params(lm.Trainer(tiny_lm_config, data=False).init())["embed"]["embedding"]
  config = ml_collections.ConfigDict(tiny_lm_config.to_dict())
  config.train.video_embedding_init = "content"
  trainer = lm.Trainer(config, data=False)
  table = _params(trainer.init())["embed"]["embedding"]
  start, stop = trainer.vocab.ranges()["video"]
  video_rows = np.asarray(table[start:stop])
  np.testing.assert_array_equal(
    np.delete(table, np.s_[start:stop], 0), np.delete(plain, np.s_[start:stop], 0)
  )
  np.testing.assert_allclose(np.std(video_rows), config.model.width**-0.5, rtol=1e-4)
  pixels = np.asarray(tokenizer.id_pixels())
  same = [(i, j) for i in range(len(pixels)) for j in range(i) if np.array_equal(pixels[i], pixels[j])]
  assert same, "one clip's tiny table pads with copies of its first row"
  for i, j in same:
    np.testing.assert_array_equal(video_rows[i], video_rows[j])
  assert not np.allclose(video_rows[0], video_rows[1])
  manifest["video_tokenizer"]["path"] = None
  token_shards.write_manifest(tokens_dir, manifest)
  with pytest.raises(ValueError, match="needs a video tokenizer that draws each id alone"):
    lm.Trainer(config, data=False).init()


def test_the_click_loss_weight_weighs_the_loss_and_not_the_metrics(tiny_lm_config):
  """`train.click_loss_weight`: the batches carry `loss_weight` (a bounce click's audio ids weighted up, at
  every level), the loss is the weighted mean of the token losses, and the per-task metrics are the plain
  ones; at 1 the batches carry no weights."""
  assert lm.Trainer(tiny_lm_config).batches.batch(0).loss_weight is None
  config = ml_collections.ConfigDict(tiny_lm_config.to_dict())
  config.train.click_loss_weight = 20.0
  trainer = lm.Trainer(config)
  for step in range(60):
    batch = trainer.batches.batch(step)
    if (batch.loss_weight > 1).any():
      break
  else:
    pytest.fail("no batch had a click in 60 steps")
  audio = trainer.vocab.modality(batch.tokens) == list(trainer.vocab.ranges()).index("audio")
  assert ((batch.loss_weight > 1) <= (audio & batch.loss_mask)).all()  # only output audio ids
  np.testing.assert_array_equal(
    batch.loss_weight[batch.loss_weight <= 1], batch.loss_mask[batch.loss_weight <= 1]
  )
  params = trainer.init().params
  rows = trainer.put_batch(batch)
  loss, sums = lm.loss_and_sums(params, trainer.graphdef, rows, trainer.vocab)
  plain = {k: v for k, v in rows.items() if k != "loss_weight"}
  plain_loss, plain_sums = lm.loss_and_sums(params, trainer.graphdef, plain, trainer.vocab)
  _assert_trees_close(sums, plain_sums, rtol=1e-6, atol=1e-6)
  nll, _ = nnx.merge(trainer.graphdef, params).token_losses(
    rows["tokens"], rows["prefix_length"], rows.get("text_embedding"), rows.get("text_slots")
  )
  weights = batch.loss_weight[:, 1:]
  assert float(loss) == pytest.approx(float((np.asarray(nll) * weights).sum() / weights.sum()), rel=1e-5)
  assert float(loss) != pytest.approx(float(plain_loss), rel=1e-3)
