"""B4: the LM train step's achieved FLOP/s / this machine's measured fp32 matmul peak ("CPU MFU").

  python bench/train.py [--steps=5] [--quick]

Model: the demo LM config (vocabulary 21,248, tied embeddings) at width 512 x depth 4, 8 heads of 64, SwiGLU
2048 (~28M parameters, 11M of them the vocabulary matrix): matmul dimensions multiples of 256, so XLA's CPU
dots run near peak. Batch 16 x 512 positions = 8,192 tokens per step, prefix 1/4 of each sequence, remat
none, the logits in one chunk of 512 positions, fp32, one device. Random tokens (the step's cost does not
depend on the ids). Tuning here: 16 x 512 instead of 8 x 1024 halves the [B, H, S, S] attention tensors
(elementwise work at memory speed) and one loss chunk instead of four keeps the logits matmul large:
MFU 0.30 -> 0.38.

Model FLOPs (MaxText): per token 6 N + 6 L S H D, N = the parameters that multiply activations (blocks +
the logits matrix, which the tied embedding lookup does not), the second term the causal attention
(QK^T and AV, forward and backward, halved for causality). Peak: best jnp.dot of square fp32 matrices
2048 .. 4096 (2 n^3 FLOPs). MFU = model FLOP/s / peak; HFU = XLA's cost_analysis FLOPs of the compiled
step / time / peak (counts the full S^2 attention, the recomputed loss chunk, the optimizer; XLA counts
a loop body once, so with several loss chunks it undercounts).
Medians of `--steps` timed steps after 2 warm-up steps; compile time separately. Last line: one JSON
object (also written to bench/train.json).
"""

import os
import platform
import statistics
import time

import bench_common
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

flags.DEFINE_integer("steps", 5, "Timed steps (after the warm-up ones).")
flags.DEFINE_integer("repeats", 5, "Timed repeats of each peak matmul.")
flags.DEFINE_bool("quick", False, "Smoke run: a small model and batch, 2 steps, one peak size.")
flags.DEFINE_integer("width", 512, "Model width.")
flags.DEFINE_integer("depth", 4, "Blocks.")
flags.DEFINE_integer("heads", 8, "Attention heads (head_dim 64).")
flags.DEFINE_integer("mlp_dim", 2048, "SwiGLU hidden width.")
flags.DEFINE_integer("batch", 16, "Sequences per step.")
flags.DEFINE_integer("length", 512, "Positions per sequence.")
flags.DEFINE_integer("logits_chunk", 512, "Positions per loss chunk.")
flags.DEFINE_string("out", None, "JSON output path (default: bench/train.json).")

HEAD_DIM = 64
WARMUP_STEPS = 2
PEAK_SIZES = (2048, 3072, 4096)
QUICK = dict(width=128, depth=2, heads=2, mlp_dim=512, batch=2, length=256, logits_chunk=128)
# Fraction of each sequence that is prefix (bidirectional, no loss).
PREFIX_FRACTION = 0.25
# MaxText: forward + backward = 3 x forward; a multiply-add = 2 FLOPs.
TRAIN_FLOPS_PER_PARAM = 6


def matmul_peak(sizes, repeats: int) -> tuple[float, int]:
  """Best fp32 jnp.dot FLOP/s over square sizes `sizes` (medians of `repeats`), and its size."""
  best = (0.0, 0)
  for n in sizes:
    a, b = (jax.random.normal(jax.random.key(i), (n, n), jnp.float32) for i in range(2))
    dot = jax.jit(jnp.dot)
    seconds, _ = bench_common.timed(lambda a=a, b=b, dot=dot: dot(a, b), repeats)
    best = max(best, (2 * n**3 / seconds, n))
  return best


def bench_config(dims: dict) -> ml_collections.ConfigDict:
  from videopoet_jax import config_utils

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = config_utils.load_config_file(os.path.join(repo, "configs", "lm.py"), "demo")
  config.model.update(
    width=dims["width"],
    depth=dims["depth"],
    heads=dims["heads"],
    head_dim=HEAD_DIM,
    mlp_dim=dims["mlp_dim"],
    remat="none",
    logits_chunk=dims["logits_chunk"],
  )
  config.train.eval_every = 0
  config.mesh.shape = (1, 1, 1)
  return config


def random_batch(config, batch: int, length: int) -> dict:
  rng = np.random.default_rng(0)
  prefix = int(length * PREFIX_FRACTION)
  return {
    "tokens": rng.integers(0, config.model.vocab_size, (batch, length)).astype(np.int32),
    "loss_mask": np.broadcast_to(np.arange(length) >= prefix, (batch, length)).copy(),
    "prefix_length": np.full((batch,), prefix, np.int32),
    "segment_ids": np.zeros((batch, length), np.int32),
    "text_slots": np.full((batch, length), -1, np.int32),
    "task_ids": np.zeros((batch,), np.int32),
  }


def model_flops_per_token(model, length: int, matmul_params: int) -> float:
  """MaxText's training FLOPs per token: 6 N + causal attention (12 L S H D, halved)."""
  attention = 2 * TRAIN_FLOPS_PER_PARAM * model.depth * length * model.heads * model.head_dim / 2
  return TRAIN_FLOPS_PER_PARAM * matmul_params + attention


def main(argv):
  del argv
  from videopoet_jax.training import lm

  given = flags.FLAGS
  names = ("width", "depth", "heads", "mlp_dim", "batch", "length", "logits_chunk")
  dims = dict(QUICK) if given.quick else {k: getattr(given, k) for k in names}
  steps = 2 if given.quick else given.steps
  config = bench_config(dims)
  trainer = lm.Trainer(config, data=False)
  params = trainer.abstract_state.params
  total_params = lm.param_count(params)
  embedding = int(np.prod(params["embed"]["embedding"].shape))
  # Tied: the embedding matrix is also the logits matrix (counted once, as a matmul).
  matmul_params = total_params if config.model.tied_embeddings else total_params - embedding
  batch = trainer.put_batch(random_batch(config, dims["batch"], dims["length"]))
  tokens = dims["batch"] * dims["length"]

  state = trainer.init()
  start = time.perf_counter()
  compiled = trainer.in_context(lambda: trainer._step.lower(state, batch).compile())
  compile_s = time.perf_counter() - start
  xla_flops = float(compiled.cost_analysis().get("flops", float("nan")))
  run = lambda state: trainer.in_context(compiled, state, batch)
  for _ in range(WARMUP_STEPS):
    state, metrics = run(state)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = run(state)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)

  peak, peak_n = matmul_peak(
    PEAK_SIZES[:1] if given.quick else PEAK_SIZES, 2 if given.quick else given.repeats
  )
  flops = model_flops_per_token(config.model, dims["length"], matmul_params) * tokens
  achieved = flops / step_s
  result = {
    "bench": "B4 train step CPU MFU",
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "devices": jax.device_count(),
    "dtype": "float32",
    "quick": given.quick,
    **dims,
    "head_dim": HEAD_DIM,
    "vocab_size": config.model.vocab_size,
    "tied_embeddings": config.model.tied_embeddings,
    "parameters": total_params,
    "matmul_parameters": matmul_params,
    "tokens_per_step": tokens,
    "compile_s": round(compile_s, 2),
    "step_s_median": step_s,
    "step_s_all": [round(t, 4) for t in times],
    "tokens_per_s": tokens / step_s,
    "model_gflop_per_step": flops / 1e9,
    "xla_gflop_per_step": xla_flops / 1e9,
    "peak_matmul_n": peak_n,
    "peak_gflops": peak / 1e9,
    "achieved_gflops": achieved / 1e9,
    "mfu": achieved / peak,
    "hfu": xla_flops / step_s / peak,
    "loss": float(lm.summarize_sums([metrics])["loss"]),
  }
  out = given.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.json")
  bench_common.emit(result, out)


if __name__ == "__main__":
  app.run(main)
