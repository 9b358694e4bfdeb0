"""The super-resolution stage's building blocks: axial windows, the masked-token objective and its
augmentations, and the non-autoregressive sampler with guidance on two conditions."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from videopoet_jax.decoding import masked_sampler
from videopoet_jax.model import sr_transformer, windows
from videopoet_jax.training import masked_tokens
from videopoet_jax.training import sr as sr_training

GRID = (2, 5, 8, 12, 3)  # [B, T, H, W, C]
# VideoPoet's first SR stage's layout at this grid: vertical, horizontal and temporal windows.
WINDOWS = [(1, 8, 4), (1, 4, 12), (5, 4, 4)]


@pytest.mark.parametrize("window", WINDOWS)
def test_window_partitioning_inverts_exactly_and_tiles_blocks(window):
  x = jnp.arange(np.prod(GRID), dtype=jnp.float32).reshape(GRID)
  parts = windows.partition(x, window)
  assert parts.shape == (GRID[0] * np.prod(GRID[1:4]) // np.prod(window), np.prod(window), GRID[4])
  np.testing.assert_array_equal(windows.merge(parts, window, GRID[:4]), x)
  wt, wh, ww = window
  first = x[0, :wt, :wh, :ww].reshape(-1, GRID[4])
  np.testing.assert_array_equal(parts[0], first)  # the first window is the grid's first block
  with pytest.raises(ValueError, match="must divide"):
    windows.partition(x, (1, 3, 4))


def test_the_masked_objective_scores_hidden_tokens_only():
  key = jax.random.PRNGKey(0)
  logits = jax.random.normal(key, (2, 10, 7))
  targets = jax.random.randint(jax.random.PRNGKey(1), (2, 10), 0, 7)
  hidden = jnp.zeros((2, 10), bool).at[:, :4].set(True)
  loss = masked_tokens.masked_token_loss(logits, targets, hidden)
  visible_changed = logits.at[:, 4:].set(100.0)
  np.testing.assert_allclose(masked_tokens.masked_token_loss(visible_changed, targets, hidden), loss)
  hidden_changed = logits.at[:, :4].set(0.0)
  assert float(masked_tokens.masked_token_loss(hidden_changed, targets, hidden)) != float(loss)
  np.testing.assert_allclose(
    loss, masked_tokens.masked_token_loss(logits[:, :4], targets[:, :4], hidden[:, :4])
  )


def test_random_masks_follow_the_cosine_schedule():
  masks = masked_tokens.random_mask(jax.random.PRNGKey(0), 2000, 64)
  counts = np.asarray(masks.sum(axis=1))
  assert counts.min() >= 1 and counts.max() <= 64
  # E[cos(pi/2 u)] = 2/pi of the tokens hidden on average.
  assert abs(counts.mean() / 64 - 2 / np.pi) < 0.02
  assert float(masked_tokens.cosine_mask_ratio(jnp.array(0.0))) == 1.0


def test_condition_augmentations():
  ids = jnp.arange(4000).reshape(4, 1000) % 512
  key = jax.random.PRNGKey(0)
  np.testing.assert_array_equal(masked_tokens.resample_ids(key, ids, 0.0, 512), ids)
  noisy = masked_tokens.resample_ids(key, ids, jnp.array([0.0, 0.1, 0.5, 1.0]), 512)
  changed = np.asarray((noisy != ids).mean(axis=1))
  assert changed[0] == 0 and abs(changed[1] - 0.1) < 0.04 and abs(changed[2] - 0.5) < 0.06
  assert changed[3] > 0.98 and int(noisy.max()) < 512  # a redraw may land on the same id
  keep_text, keep_low_res = masked_tokens.condition_dropout(key, 10_000, 0.1)
  assert abs(1 - float(keep_text.mean()) - 0.1) < 0.01 and abs(1 - float(keep_low_res.mean()) - 0.1) < 0.01
  # Independent draws: both dropped in about 1% of examples.
  assert abs(float((~keep_text & ~keep_low_res).mean()) - 0.01) < 0.004


def test_guidance_at_scale_one_is_the_conditional_logits():
  both, low_res_only, neither = (jax.random.normal(jax.random.PRNGKey(i), (2, 5, 9)) for i in range(3))
  guided = masked_sampler.two_condition_guidance(both, low_res_only, neither, 1.0, 1.0)
  np.testing.assert_allclose(guided, both, atol=1e-6)
  no_text = masked_sampler.two_condition_guidance(both, low_res_only, neither, 0.0, 1.0)
  np.testing.assert_allclose(no_text, low_res_only, atol=1e-6)


@pytest.mark.parametrize("steps,length", [(24, 320), (4, 4), (1, 7)])
def test_the_schedule_reveals_every_id_once_in_its_steps(steps, length):
  counts = masked_sampler.hidden_counts(steps, length)
  assert len(counts) == steps and counts[-1] == 0
  assert np.all(np.diff(np.concatenate([[length], counts])) < 0)
  with pytest.raises(ValueError, match="steps must be"):
    masked_sampler.hidden_counts(length + 1, length)


def test_a_sampler_step_never_reveals_a_token_twice():
  """Every step's revealed ids are final; each step reveals exactly the schedule's count; the result is
  deterministic for a key."""
  batch, length, vocab, steps = 3, 40, 11, 6
  counts = masked_sampler.hidden_counts(steps, length)
  history = []

  def logits_fn(ids, hidden):
    history.append((np.asarray(ids), np.asarray(hidden)))
    return jax.random.normal(jax.random.PRNGKey(len(history)), (batch, length, 1, vocab))

  with jax.disable_jit():
    ids = masked_sampler.sample(logits_fn, jax.random.PRNGKey(7), batch, length, steps)
  history.append((np.asarray(ids), np.zeros((batch, length), bool)))
  for step in range(steps):
    (before, hidden_before), (after, hidden_after) = history[step], history[step + 1]
    visible = ~hidden_before
    np.testing.assert_array_equal(after[visible], before[visible])
    assert not (hidden_after & visible).any()
    np.testing.assert_array_equal(hidden_after.sum(axis=1), counts[step])
  history.clear()
  with jax.disable_jit():
    again = masked_sampler.sample(logits_fn, jax.random.PRNGKey(7), batch, length, steps)
  np.testing.assert_array_equal(again, ids)


def _sr_model(arg: str) -> ml_collections.ConfigDict:
  from conftest import load_config

  return load_config("sr", arg).model


@pytest.mark.parametrize("arg, parameters", [("paper", 1.0e9), ("paper,stage=2", 0.5e9)])
def test_the_paper_stages_have_the_papers_sizes_and_layouts(arg, parameters):
  """VideoPoet's two SR stages: about 1B and 500M parameters (counted abstractly: nothing is allocated);
  every window divides the grid and the low-resolution window is half the cross window."""
  config = _sr_model(arg)
  model = nnx.eval_shape(lambda: sr_transformer.SRTransformer(config, rngs=nnx.Rngs(0)))
  count = sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert abs(count / parameters - 1) < 0.15, count
  sr_transformer.check_model(config)


def test_id_factorization_inverts():
  ids = jnp.arange(2**6)
  sub_ids = sr_transformer.split_factors(ids, 6, 2)
  assert int(sub_ids.max()) == 7
  np.testing.assert_array_equal(sr_transformer.merge_factors(sub_ids, 6, 2), ids)


def test_a_tiny_sr_model_overfits_one_clip_and_samples_it_back():
  """The trainer's step (masked objective, noise augmentation, condition dropout) on one clip's ids, then
  the sampler (greedy, 4 steps) from the same conditions returns them."""
  from conftest import load_config

  config = load_config("sr", "tiny")
  config.train.update(warmup_steps=10, steps=300, learning_rate=3e-3)
  model_cfg = config.model
  ids = jax.random.randint(jax.random.PRNGKey(1), (1, *model_cfg.grid), 0, 2**model_cfg.code_bits)
  low_res = jax.random.randint(jax.random.PRNGKey(2), (1, 2, 2, 2), 0, 2**model_cfg.code_bits)
  text = jnp.array([[3, 5, 0]])
  keep = jnp.array([True])
  batch = {"ids": ids, "low_res_ids": low_res, "text": text}
  graphdef, _, state = sr_training.init_state(config)
  step = functools.partial(sr_training.train_step, graphdef=graphdef, disc_graphdef=None, config=config)
  step = jax.jit(step)
  losses = []
  for _ in range(config.train.steps):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:20]), (losses[:5], losses[-5:])
  model = nnx.merge(graphdef, state.params)

  def logits_fn(flat_ids, hidden):
    shape = (1, *model_cfg.grid)
    logits = model(flat_ids.reshape(shape), hidden.reshape(shape), low_res, text, keep, keep)
    return logits.reshape(1, ids.size, 2, -1)

  sampled = masked_sampler.sample(logits_fn, jax.random.PRNGKey(0), 1, ids.size, steps=4, temperature=0.0)
  np.testing.assert_array_equal(sampled.reshape(ids.shape), ids)
  with pytest.raises(ValueError, match="must be"):
    model(ids[:, :1], jnp.zeros_like(ids[:, :1], bool), low_res, text, keep, keep)


def world_format_config(tmp_path, code_bits: int, high_res_tokenizer, low_res_tokenizer):
  """The tiny SR config at the world's format (17 x 128 x 128 clips -> 5 x 16 x 16 ids from 5 x 8 x 8), with
  a text model trained on 50 captions into `tmp_path` and the two tokenizers given."""
  from videopoet_jax.data import shapes_world
  from videopoet_jax.tokenizers import text

  from conftest import load_config

  text.train([shapes_world.render(i)["caption"] for i in range(50)], str(tmp_path / "text.model"), 64)
  config = load_config("sr", "tiny")
  config.model.update(
    grid=(5, 16, 16), code_bits=code_bits, text_vocab=64,
    windows=((1, 16, 2), (1, 2, 16), (5, 2, 2)), cross_window=(5, 2, 2),
  )  # fmt: skip
  config.data.update(
    text_model=str(tmp_path / "text.model"),
    high_res_tokenizer=str(high_res_tokenizer),
    low_res_tokenizer=str(low_res_tokenizer),
  )
  return config


def test_the_sr_trainer_trains_on_world_clips_and_exports_a_stage_that_upscales(tmp_path):
  """train.py's SR trainer end to end at the world's format, with tiny models: 128-pixel shapes_world clips
  and their bicubic 64-pixel versions tokenized on the fly, two steps, an export that holds the text model
  and the high-resolution tokenizer and turns base ids and a caption into a 128-pixel clip."""
  from videopoet_jax.data import token_shards
  from videopoet_jax.decoding import super_resolution
  from videopoet_jax.tokenizers import pretrained
  from videopoet_jax.tokenizers.video import VideoTokenizer
  from videopoet_jax.training import loop

  from conftest import load_config

  tokenizer_config = load_config("video_tokenizer", "tiny")  # 8x space: 128 px -> 16x16, 64 -> 8x8
  tokenizer = VideoTokenizer(tokenizer_config.model, rngs=nnx.Rngs(0))
  pretrained.export(str(tmp_path / "video"), nnx.state(tokenizer, nnx.Param), tokenizer_config)
  config = world_format_config(
    tmp_path, tokenizer_config.model.code_bits, tmp_path / "video", tmp_path / "video"
  )
  config.data.workers = 1
  config.train.update(steps=2, batch_size=8, log_every=1, checkpoint_every=2)
  trainer = sr_training.Trainer(config)
  batch = trainer.put_batch(next(trainer.batches(0)))
  assert batch["ids"].shape == (8, 5, 16, 16) and batch["low_res_ids"].shape == (8, 5, 8, 8)
  assert batch["text"].shape == (8, config.data.text_length) and int(batch["text"].min()) == 0
  loop.fit(trainer, str(tmp_path / "run"), trainer.batches)

  export = tmp_path / "run" / "export"
  assert (export / token_shards.TEXT_MODEL).exists()
  assert (export / pretrained.HIGH_RES_TOKENIZER / "config.json").exists()
  resolver = super_resolution.SuperResolver.load(str(tmp_path / "run"))
  sampling = super_resolution.SRSampling(steps=2, temperature=1.0, text_guidance=2.0, low_res_guidance=1.5)
  low_res = np.asarray(batch["low_res_ids"][:1])
  clip = resolver.upscale(low_res, ["a red circle"], 0, sampling)
  assert clip.shape == (1, 17, 128, 128, 3) and clip.dtype == np.uint8
  np.testing.assert_array_equal(clip, resolver.upscale(low_res, ["a red circle"], 0, sampling))
  assert resolver.default_sampling == super_resolution.SRSampling(**config.sampling.to_dict())
  super_resolution.write_sampling(str(export), sampling)  # chosen settings travel with the export
  assert super_resolution.SuperResolver.load(str(export)).default_sampling == sampling
  config.data.high_res_tokenizer = str(tmp_path / "run" / "export")  # not a video tokenizer
  with pytest.raises(ValueError, match="video_tokenizer"):
    sr_training.Trainer(config)


def test_rematerialized_blocks_give_the_same_loss_and_gradients():
  """`model.remat="full"` (the paper stages') recomputes each block in the backward pass: same numbers."""
  from conftest import load_config

  config = load_config("sr", "tiny")
  grid, bits = config.model.grid, config.model.code_bits
  batch = {
    "ids": jax.random.randint(jax.random.PRNGKey(1), (2, *grid), 0, 2**bits),
    "low_res_ids": jax.random.randint(
      jax.random.PRNGKey(2), (2, *sr_transformer.low_res_grid(grid)), 0, 2**bits
    ),
    "text": jnp.array([[3, 5, 0], [4, 0, 0]]),
  }
  results = []
  for remat in ("none", "full"):
    config.model.remat = remat
    graphdef, _, state = sr_training.init_state(config)
    loss = lambda p: sr_training.masked_loss(p, graphdef, batch, jax.random.PRNGKey(0), config)  # noqa: B023
    results.append(jax.jit(jax.grad(loss, has_aux=True))(state.params))
  (grads, metrics), (remat_grads, remat_metrics) = results
  np.testing.assert_allclose(metrics["loss"], remat_metrics["loss"], rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, remat_grads)


def test_content_init_starts_ids_that_draw_alike_alike_and_needs_patch_tables(tmp_path):
  """`train.video_embedding_init="content"` (the demo stage's, on patch tables): the id embeddings, the
  low-resolution ids' embeddings and the output head are one projection of the tables' pixels (equal
  patches -> equal rows; the head is the id embeddings' transpose); factored ids and a tokenizer without
  per-id pixels are refused."""
  from videopoet_jax.tokenizers import pretrained
  from videopoet_jax.tokenizers.video import VideoTokenizer
  from videopoet_jax.training import patch_table as patch_table_training

  from conftest import load_config

  bits, tables = 8, {}
  for name, size in (("high", 128), ("low", 64)):  # one clip each: small tables padded with copies
    table_config = load_config("video_tokenizer", "world_table")
    table_config.model.code_bits = bits
    table_config.data.update(num_clips=1, size=size)
    tables[name] = patch_table_training.build(table_config, str(tmp_path / name))
  config = world_format_config(tmp_path, bits, tmp_path / "high", tmp_path / "low")
  config.model.factors = 1
  config.train.video_embedding_init = "content"
  params = sr_training.Trainer(config).init().params
  embedded = {
    "high": np.asarray(params["id_embeddings"][0]["embedding"].value),
    "low": np.asarray(params["low_res_embeddings"][0]["embedding"].value),
  }
  np.testing.assert_array_equal(np.asarray(params["heads"][0]["kernel"].value), embedded["high"].T)
  for name, rows in embedded.items():
    np.testing.assert_allclose(np.std(rows), config.model.width**-0.5, rtol=1e-4)
    pixels = np.asarray(tables[name].id_pixels())
    same = [(i, j) for i in range(len(pixels)) for j in range(i) if np.array_equal(pixels[i], pixels[j])]
    assert same and not np.allclose(rows[0], rows[1])
    for i, j in same:
      np.testing.assert_array_equal(rows[i], rows[j])
  config.model.factors = 2
  with pytest.raises(ValueError, match="factors=1"):
    sr_training.Trainer(config).init()
  config.model.factors = 1
  cnn_config = load_config("video_tokenizer", "tiny")  # 8x space: 64 px -> 8x8, as the table
  cnn = VideoTokenizer(cnn_config.model, rngs=nnx.Rngs(0))
  pretrained.export(str(tmp_path / "cnn"), nnx.state(cnn, nnx.Param), cnn_config)
  config.data.low_res_tokenizer = str(tmp_path / "cnn")
  with pytest.raises(ValueError, match="patch table"):
    sr_training.Trainer(config).init()
