"""Whether a video tokenizer's ids hold an attribute that its decoded pixels lose: a small classifier on ids.

  python bench/id_probe.py --tokens_dir=tokens/world_turns_20k [--attribute=shape] [--num_train=8000]
      [--steps=1000] [--latent_frames=0] [--out=bench/id_probe.json]

Trains a small conv net on the `video` stream of a token-shard folder's train split (each id as its LFQ
code, `[t, h, w, bits]` in {-1, +1} -> three convs over the id grid -> max over the grid -> logits) to read
one shapes_world attribute of the clip's first object, and scores it on the validation split, beside
chance and the majority class. `--latent_frames=1` reads the first latent frame alone (the clip's first
frame, all an image's encoding holds). Set beside `bench/shapes_analysis.py`'s ceiling (the same
attribute read from the round trip's pixels): where the probe reads what the pixels do not, the decoder
loses it (a decoder-only fix keeps the LM's ids); where it cannot, the encoder does (a new tokenizer and
LM). `bench/id_table.py` then asks whether the ids also say where the outline runs, which drawing needs.
Prints one JSON line.
"""

import os
import platform
import time

import bench_common
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging
from flax import nnx

from videopoet_jax.data import shapes_world as world
from videopoet_jax.data import token_shards
from videopoet_jax.eval import intervals
from videopoet_jax.tokenizers import lfq

flags.DEFINE_string(
  "tokens_dir", None, "Token-shard folder (tokenizers/encode.py) of a shapes_world dataset."
)
flags.DEFINE_enum("attribute", "shape", list(world.OBJECT_ATTRIBUTES), "Which attribute to read.")
flags.DEFINE_integer("num_train", 8000, "Training clips (the first of the train split).")
flags.DEFINE_integer("steps", 1000, "Adam steps.")
flags.DEFINE_integer("batch_size", 64, "Clips per step.")
flags.DEFINE_integer("width", 64, "Channels of the probe's convs.")
flags.DEFINE_integer("latent_frames", 0, "Read only each clip's first N latent frames (0: all).")
flags.DEFINE_integer("seed", 0, "Initialization and batch order.")
flags.DEFINE_string("out", "bench/id_probe.json", "Where to write the JSON result.")
flags.mark_flag_as_required("tokens_dir")
FLAGS = flags.FLAGS

LEARNING_RATE = 1e-3


class IdProbe(nnx.Module):
  """`[B, t, h, w, bits]` codes in {-1, +1} -> `[B, classes]` logits."""

  def __init__(self, bits: int, width: int, classes: int, *, rngs: nnx.Rngs):
    self.convs = nnx.List(
      [
        nnx.Conv(bits, width, (1, 3, 3), rngs=rngs),
        nnx.Conv(width, width, (3, 3, 3), rngs=rngs),
        nnx.Conv(width, width, (1, 3, 3), rngs=rngs),
      ]
    )
    self.head = nnx.Linear(width, classes, rngs=rngs)

  def __call__(self, codes: jax.Array) -> jax.Array:
    h = codes
    for conv in self.convs:
      h = nnx.gelu(conv(h))
    return self.head(h.max(axis=(1, 2, 3)))


def load(tokens_dir: str, split: str, limit: int, values: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
  """`(ids [N, t, h, w], labels [N])` of the first `limit` records of `split`."""
  ids, labels = [], []
  for path in token_shards.shard_paths(tokens_dir, split):
    for record in token_shards.read_shard(path):
      ids.append(record["video"][: FLAGS.latent_frames or None])
      labels.append(values.index(record["attributes"]["objects"][0][FLAGS.attribute]))
      if len(ids) == limit:
        return np.stack(ids), np.array(labels)
  return np.stack(ids), np.array(labels)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  start = time.perf_counter()
  manifest = token_shards.read_manifest(FLAGS.tokens_dir)
  bits = manifest["video_tokenizer"]["code_bits"]
  values = tuple(world.ATTRIBUTE_VALUES[FLAGS.attribute])
  train_ids, train_labels = load(FLAGS.tokens_dir, "train", FLAGS.num_train, values)
  val_ids, val_labels = load(FLAGS.tokens_dir, "validation", 0, values)

  probe = IdProbe(bits, FLAGS.width, len(values), rngs=nnx.Rngs(FLAGS.seed))
  graphdef, params = nnx.split(probe, nnx.Param)
  tx = optax.adam(LEARNING_RATE)
  opt_state = tx.init(params)
  logits_fn = lambda p, ids: nnx.merge(graphdef, p)(lfq.ids_to_codes(ids, bits))  # noqa: E731

  @jax.jit
  def step(params, opt_state, ids, labels):
    loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, ids), labels).mean()  # noqa: E731
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda p, ids: jnp.argmax(logits_fn(p, ids), axis=-1))
  rng = np.random.default_rng(FLAGS.seed)
  for i in range(FLAGS.steps):
    batch = rng.integers(0, len(train_ids), FLAGS.batch_size)
    params, opt_state, loss = step(params, opt_state, train_ids[batch], train_labels[batch])
    if (i + 1) % 100 == 0:
      logging.warning("step %d/%d loss %.4f", i + 1, FLAGS.steps, float(loss))

  correct = np.asarray(predict(params, val_ids)) == val_labels
  train_correct = np.asarray(predict(params, train_ids[: len(val_ids)])) == train_labels[: len(val_ids)]
  counts = np.bincount(val_labels, minlength=len(values))
  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "tokens_dir": FLAGS.tokens_dir,
    "attribute": FLAGS.attribute,
    "latent_frames": FLAGS.latent_frames or "all",
    "num_train": int(len(train_ids)),
    "steps": FLAGS.steps,
    "validation": intervals.summarize_rate(correct.tolist()),
    "train_accuracy": float(train_correct.mean()),
    "baselines": {"chance": 1 / len(values), "majority": float(counts.max() / counts.sum())},
    "seconds": round(time.perf_counter() - start, 1),
  }
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
