"""B1, B2, B3, B6: decoding speed on this machine. Prints one JSON line (and writes it to --out).

  python bench/decode.py [--repeats=5] [--quick]

The model is GPT-2-small-like but CPU-sized (flags; defaults 4 layers, width 256, 4 heads, vocabulary 8192,
SwiGLU width 8W/3 so that the MLP has GPT-2's 8W^2 weights), random weights, fp32. The output head is
untied (GPT-2 ties it; the bytes read per step are the same): with tied random embeddings greedy decoding
just repeats the last token, which would make the B1 identity check vacuous.

B1  KV-cache decode vs full recomputation, tokens/s, batch 1 and 8, prompt 64, 320 and 1280 new tokens.
    KV cache: `decoding.generate` (one jitted prefill + while_loop), medians of `repeats` runs.
    Recompute: each step reruns the model over the whole sequence (logits of the last position only,
    which favours recomputation). Running it for every step is too slow here (~B x 10^3 s at 1280), so
    the forward time of exact lengths n is measured (medians) on a grid of lengths and
    summed over the steps' lengths 64 .. 64 + T - 1 by linear interpolation. The estimate is checked
    against one fully measured recompute run (batch 1, 320 tokens, padded to multiples of 64, so a bit
    slower than exact lengths).
    Greedy tokens of the KV cache and the recompute run must be identical (batch 1 x 320, batch 8 x 64).
B2  roofline fraction: (weight bytes + KV bytes attended per step) x steps/s / read bandwidth of a 512 MB
    jnp.sum, batch 1..16, prompt 64 + 128 tokens, on a wider, deeper model (default 8 layers, width 512:
    ~110 MB read per step) because the B1 model's ~21 MB fits in this machine's 32 MB L3 and would
    read above the DRAM roofline. Weight bytes leave out the untied embedding table (only gathered); KV
    bytes count the written positions (mean length); the cache is fixed-shape and attention reads all of
    it, so the physical traffic is higher.
B3  ours / Hugging Face transformers GPT2LMHeadModel.generate(use_cache=True, greedy) of the same layers,
    width, heads and vocabulary, 1-token prompt, 256 new tokens, batch 1 and 8; torch on as many threads
    as XLA (all cores) and on 1 thread, the ratio taken against the faster (null when torch/transformers
    are missing: `pip install -e .[bench]`).
B6  per-token latency of the Python-dispatched loop (`generate_stepwise`: one jitted call per token,
    donated state) vs the single jitted while_loop, batch 1, prompt 64, 320 tokens.
"""

import os
import platform
import sys
import time

import bench_common
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags
from flax import nnx

from videopoet_jax import decoding
from videopoet_jax.model.transformer import Transformer

flags.DEFINE_integer("width", 256, "Model width.")
flags.DEFINE_integer("depth", 4, "Layers.")
flags.DEFINE_integer("heads", 4, "Attention heads (head_dim = width / heads).")
flags.DEFINE_integer("vocab", 8192, "Vocabulary size.")
flags.DEFINE_integer("prompt", 64, "B1/B2/B6 prompt length.")
flags.DEFINE_list("lengths", ["320", "1280"], "B1 generated lengths.")
flags.DEFINE_list("batches", ["1", "8"], "B1 and B3 batch sizes.")
flags.DEFINE_list("roofline_batches", ["1", "2", "4", "8", "16"], "B2 batch sizes.")
flags.DEFINE_integer("roofline_width", 512, "B2 model width (weights larger than the last-level cache).")
flags.DEFINE_integer("roofline_depth", 8, "B2 model layers.")
flags.DEFINE_integer("roofline_tokens", 128, "B2 generated tokens.")
flags.DEFINE_integer("hf_tokens", 256, "B3 new tokens.")
flags.DEFINE_integer("recompute_grid", 9, "B1 recompute: sequence lengths measured.")
flags.DEFINE_integer("bucket", 64, "B1 recompute check: sequences are padded to a multiple of this.")
flags.DEFINE_integer("repeats", 5, "Timed runs per figure (median), after one warm-up run.")
flags.DEFINE_bool("quick", False, "Smoke run: short lengths, 2 repeats (numbers meaningless).")
flags.DEFINE_string("out", "bench/decode.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS

BYTES_PER_FLOAT = 4
BANDWIDTH_BYTES = 512 * 2**20
ROPE_BASE = 10_000.0
B1_CHECK_BATCH8_TOKENS = 64


def _model_config(width=None, depth=None):
  """The benchmark model (B1, B3, B6), or a wider/deeper one (B2) with head_dim kept."""
  width, depth = width or FLAGS.width, depth or FLAGS.depth
  return ml_collections.ConfigDict(
    dict(
      vocab_size=FLAGS.vocab,
      width=width,
      depth=depth,
      heads=width // (FLAGS.width // FLAGS.heads),
      head_dim=FLAGS.width // FLAGS.heads,
      mlp_dim=8 * width // 3,
      rope_base=ROPE_BASE,
      tied_embeddings=False,
      text_embedding_dim=0,
      dtype="float32",
      param_dtype="float32",
      remat="none",
      logits_chunk=FLAGS.prompt,
    )
  )


def _prompt(batch, length, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, length), 0, FLAGS.vocab)


def _kv_generate(model, prompt, tokens):
  schedule = decoding.schedule_from_segments([(0, FLAGS.vocab, tokens)])
  settings = decoding.SamplingSettings.create(temperature=0.0)
  return lambda: decoding.generate(model, prompt, schedule, settings, jax.random.key(0))


def _recompute_step(model, prefix_length):
  """Jitted `tokens [B, n], last [] -> [B]` argmax ids at position last - 1, rerunning the whole sequence."""
  graphdef, params = nnx.split(model)

  @jax.jit
  def step(params, tokens, last):
    model = nnx.merge(graphdef, params)
    hidden = model.hidden(tokens, jnp.full(tokens.shape[:1], prefix_length))
    return jnp.argmax(model.logits(jax.lax.dynamic_slice_in_dim(hidden, last - 1, 1, axis=1))[:, 0], axis=-1)

  return lambda tokens, last: step(params, tokens, last)


def _recompute_greedy(step, prompt, tokens, bucket):
  """Greedy decoding by recomputation, sequences padded to multiples of `bucket` (one compile each)."""
  batch, length = prompt.shape
  padded = -(-(length + tokens) // bucket) * bucket
  sequence = np.zeros((batch, padded), np.int32)
  sequence[:, :length] = np.asarray(prompt)
  for n in range(length, length + tokens):
    width = -(-n // bucket) * bucket
    sequence[:, n] = np.asarray(step(jnp.asarray(sequence[:, :width]), n))
  return sequence[:, length : length + tokens]


def _b1(model, repeats):
  prompt_length, lengths, batches = (
    FLAGS.prompt,
    [int(t) for t in FLAGS.lengths],
    [int(b) for b in FLAGS.batches],
  )
  step = _recompute_step(model, prompt_length)
  result, kv = {}, {}
  for batch in batches:
    prompt = _prompt(batch, prompt_length)
    for tokens in lengths:
      seconds, first = bench_common.timed(_kv_generate(model, prompt, tokens), repeats)
      kv[batch, tokens] = seconds
      result[f"kv_tok_s_b{batch}_{tokens}"] = batch * tokens / seconds
      result[f"kv_compile_and_first_run_s_b{batch}_{tokens}"] = first
    # Recompute: per-length forward times on a grid of exact lengths, quadratic fit, summed over steps.
    longest = prompt_length + max(lengths) - 1
    grid = np.unique(np.geomspace(prompt_length, longest, FLAGS.recompute_grid).round().astype(int))
    grid_s = []
    for n in grid:
      tokens_n = _prompt(batch, int(n), seed=1)
      grid_s.append(bench_common.timed(lambda tokens_n=tokens_n, n=n: step(tokens_n, int(n)), repeats)[0])
    result[f"recompute_grid_b{batch}"] = {int(n): s for n, s in zip(grid, grid_s, strict=True)}
    for tokens in lengths:
      steps = np.arange(prompt_length, prompt_length + tokens)
      estimate = float(np.sum(np.interp(steps, grid, grid_s)))
      result[f"recompute_tok_s_b{batch}_{tokens}"] = batch * tokens / estimate
      result[f"kv_speedup_b{batch}_{tokens}"] = estimate / kv[batch, tokens]
  # Greedy identity, and the fit checked against one measured (padded) recompute run.
  checks = [(1, min(lengths)), (max(batches), min(min(lengths), B1_CHECK_BATCH8_TOKENS))]
  identical = True
  for batch, tokens in checks:
    prompt = _prompt(batch, prompt_length)
    ours = np.asarray(_kv_generate(model, prompt, tokens)())
    for width in {-(-n // FLAGS.bucket) * FLAGS.bucket for n in range(prompt_length, prompt_length + tokens)}:
      jax.block_until_ready(step(jnp.zeros((batch, width), jnp.int32), prompt_length))  # compile first
    start = time.perf_counter()
    reference = _recompute_greedy(step, prompt, tokens, FLAGS.bucket)
    measured = time.perf_counter() - start
    identical &= bool(np.array_equal(ours, reference))
    if batch == 1:
      result[f"recompute_measured_padded_tok_s_b1_{tokens}"] = tokens / measured
  result["greedy_identical"] = identical
  result["greedy_checked"] = [f"batch {b} x {t} tokens" for b, t in checks]
  result["kv_speedup_1280"] = result.get("kv_speedup_b1_1280")
  return result


def _bandwidth(repeats):
  x = jnp.ones((BANDWIDTH_BYTES // BYTES_PER_FLOAT,), jnp.float32)
  read = jax.jit(jnp.sum)
  seconds, _ = bench_common.timed(lambda: read(x), repeats)
  return BANDWIDTH_BYTES / seconds


def _b2(model, repeats):
  """On a model larger than the last-level cache (the B1 model's weights fit in a 32 MB L3, which would
  put it above the DRAM roofline)."""
  del model
  config = _model_config(FLAGS.roofline_width, FLAGS.roofline_depth)
  model = Transformer(config, rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  weight_bytes = sum(v[...].nbytes for _, v in nnx.to_flat_state(params))
  # An untied embedding table is only gathered (B rows per step), not read.
  weight_bytes -= 0 if config.tied_embeddings else model.embed.embedding[...].nbytes
  tokens = FLAGS.roofline_tokens
  mean_length = FLAGS.prompt + (tokens - 1) / 2
  kv_bytes_per_position = 2 * config.depth * config.heads * config.head_dim * BYTES_PER_FLOAT
  bandwidth = _bandwidth(repeats)
  fractions = {}
  for batch in (int(b) for b in FLAGS.roofline_batches):
    seconds, _ = bench_common.timed(_kv_generate(model, _prompt(batch, FLAGS.prompt), tokens), repeats)
    step_bytes = weight_bytes + batch * mean_length * kv_bytes_per_position
    fractions[batch] = step_bytes * tokens / seconds / bandwidth
  return {
    "read_bandwidth_gb_s": bandwidth / 1e9,
    "roofline_model": dict(config),
    "roofline_weight_bytes_per_step": weight_bytes,
    "roofline_tokens": tokens,
    "roofline_fraction": fractions,
    "roofline_fraction_b1": fractions.get(1),
  }


def _hf_gpt2(batch, tokens, repeats, threads):
  """Median seconds of HF GPT-2 greedy generate on `threads` torch threads (None without torch or
  transformers), and the library versions."""
  # This folder's tokenizers.py would shadow Hugging Face's `tokenizers`, which transformers imports.
  here = os.path.dirname(os.path.abspath(__file__))
  sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
  try:
    import torch
    import transformers
  except ImportError:
    return None, None
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  config = transformers.GPT2Config(
    vocab_size=FLAGS.vocab,
    n_positions=max(1024, tokens + 1),
    n_embd=FLAGS.width,
    n_layer=FLAGS.depth,
    n_head=FLAGS.heads,
    bos_token_id=None,
    eos_token_id=None,
  )
  model = transformers.GPT2LMHeadModel(config).eval()
  prompt = torch.randint(0, FLAGS.vocab, (batch, 1))

  def run():
    with torch.inference_mode():
      return model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
      )

  out = run()
  assert out.shape == (batch, tokens + 1), out.shape
  seconds, _ = bench_common.timed(run, repeats)
  return seconds, f"torch {torch.__version__}, transformers {transformers.__version__}"


def _b3(model, repeats):
  """vs_hf_b{B}: ours over HF at HF's faster thread count (1 or all cores; on a busy machine torch on all
  cores can be many times slower than on one); vs_hf_same_threads_b{B}: HF on all cores, like XLA."""
  result, tokens = {}, FLAGS.hf_tokens
  for batch in (int(b) for b in FLAGS.batches):
    ours, _ = bench_common.timed(_kv_generate(model, _prompt(batch, 1), tokens), repeats)
    result[f"ours_tok_s_b{batch}_hf_setting"] = batch * tokens / ours
    result[f"vs_hf_b{batch}"] = result[f"vs_hf_same_threads_b{batch}"] = None
    theirs = {}
    for threads in sorted({1, os.cpu_count()}):
      seconds, result["hf_versions"] = _hf_gpt2(batch, tokens, repeats, threads)
      if seconds is not None:
        theirs[threads] = seconds
        result[f"hf_tok_s_b{batch}_{threads}_threads"] = batch * tokens / seconds
    if theirs:
      result[f"vs_hf_b{batch}"] = min(theirs.values()) / ours
      result[f"vs_hf_same_threads_b{batch}"] = theirs[os.cpu_count()] / ours
  return result


def _b6(model, repeats):
  tokens, prompt = min(int(t) for t in FLAGS.lengths), _prompt(1, FLAGS.prompt)
  schedule = decoding.schedule_from_segments([(0, FLAGS.vocab, tokens)])
  settings = decoding.SamplingSettings.create(temperature=0.0)
  key = jax.random.key(0)
  args = (model, prompt, schedule, settings, key)
  loop, _ = bench_common.timed(lambda: decoding.generate(*args), repeats)
  stepwise, _ = bench_common.timed(lambda: decoding.generate_stepwise(*args), repeats)
  return {
    "while_loop_ms_per_token": loop / tokens * 1e3,
    "python_loop_ms_per_token": stepwise / tokens * 1e3,
    "python_loop_over_while_loop": stepwise / loop,
  }


def main(argv):
  del argv
  repeats = FLAGS.repeats
  if FLAGS.quick:
    FLAGS.lengths, FLAGS.hf_tokens, FLAGS.recompute_grid = ["32", "64"], 32, 4
    FLAGS.roofline_batches, FLAGS.roofline_tokens, FLAGS.roofline_depth = ["1", "2"], 16, 2
    repeats = 2
  model = Transformer(_model_config(), rngs=nnx.Rngs(0))
  start = time.perf_counter()
  result = {
    "benchmark": "decode (B1, B2, B3, B6)",
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "backend": jax.default_backend(),
    "dtype": "float32",
    "model": dict(_model_config()),
    "parameters": sum(v[...].size for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))),
    "prompt": FLAGS.prompt,
    "repeats": repeats,
    "quick": FLAGS.quick,
  }
  for part in (_b1, _b2, _b3, _b6):
    result.update(part(model, repeats))
  result["wall_s"] = time.perf_counter() - start
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
