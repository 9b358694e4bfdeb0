"""How much an LM's text_to_video likelihood reads the direction word of its prompt, per prompted direction.

  python bench/caption_sensitivity.py [--checkpoint=DIR] [--num=200] [--split=validation]
      [--out=bench/caption_sensitivity.json]

Teacher-forced: each shapes_world clip's video ids (through the model's own video tokenizer) scored after
its true caption and after the caption with the direction word swapped for its opposite (left <-> right,
up <-> down). Reports, per prompted direction, the mean NLL (nats per id) of each output latent frame under
both captions: where the swap barely raises the NLL of the first moving latent frame (1), the model
has not tied that word to the motion, and its samples of that direction are near chance. Still clips are
reported without a swap. Prints one JSON line.
"""

import collections
import time

import bench_common
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from videopoet_jax.decoding.generator import Generator
from videopoet_jax.eval import lm_tasks

flags.DEFINE_string("checkpoint", None, "LM export or workdir (default: the bundled model).")
flags.DEFINE_integer("num", 200, "Clips of the split.")
flags.DEFINE_enum("split", "validation", ["validation", "test"], "Which seeds.")
flags.DEFINE_integer("batch_size", 50, "Sequences per forward pass.")
flags.DEFINE_string("out", "bench/caption_sensitivity.json", "Where the JSON line is also written.")
FLAGS = flags.FLAGS

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def frame_nll(gen: Generator, captions: list[str], ids: np.ndarray) -> np.ndarray:
  """`[N, latent frames]` mean NLL of each clip's video ids `ids [N, t, h, w]` after its caption."""
  batch = bench_common.caption_batch(gen, "text_to_video", captions, ids)
  out = []
  for i in range(0, len(captions), FLAGS.batch_size):
    rows = slice(i, i + FLAGS.batch_size)
    nll, _ = gen.model.token_losses(jnp.asarray(batch.tokens[rows]), jnp.asarray(batch.prefix_length[rows]))
    nll = np.asarray(nll)
    out += [n[p - 1 : p - 1 + ids[0].size] for n, p in zip(nll, batch.prefix_length[rows], strict=True)]
  return np.stack(out).reshape(len(captions), ids.shape[1], -1).mean(-1)


def main(argv):
  del argv
  start = time.time()
  gen = Generator.load(FLAGS.checkpoint)
  examples = lm_tasks.split_examples(FLAGS.num, split=FLAGS.split)
  clips = np.stack([e["video"] for e in examples])
  ids = bench_common.batched(gen.encode_video, clips, FLAGS.batch_size)
  captions = [e["caption"] for e in examples]
  swapped = [" ".join(OPPOSITE.get(w, w) for w in c.split()) for c in captions]
  true_nll, swapped_nll = frame_nll(gen, captions, ids), frame_nll(gen, swapped, ids)
  groups = collections.defaultdict(list)
  for i, e in enumerate(examples):
    groups[e["objects"][0]["direction"]].append(i)
  result = {
    "checkpoint": FLAGS.checkpoint or "bundled",
    "split": FLAGS.split,
    "by_direction": {
      d: {
        "n": len(rows),
        "nll_per_latent_frame": np.round(true_nll[rows].mean(0, dtype=np.float64), 4).tolist(),
        "swapped_nll_per_latent_frame": np.round(swapped_nll[rows].mean(0, dtype=np.float64), 4).tolist(),
      }
      for d, rows in sorted(groups.items())
    },
    "seconds": round(time.time() - start, 1),
  }
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
