"""How precisely an LM on the world's patch table draws an object: text_to_image, teacher-forced.

  python bench/object_patches.py [--checkpoint=DIR] [--num=48] [--split=validation]
      [--out=bench/object_patches.json]

Each shapes_world clip's first frame (through the model's patch table) is scored after its caption. Its 64
ids split into background patches (one colour), the object's first patch in raster order (where it starts:
no model can know), and the object's later patches (given the ones before and the caption, each is nearly
determined). For each kind: the mean probability of the true id, how often it is the most likely id, and the
probability mass on near misses (among the 50 most likely ids, patches that differ from the truth in 1 to
NEAR_PIXELS pixels) and on the other ids of those 50. Needs an LM whose video tokenizer is a patch table.
Prints one JSON line.
"""

import time

import bench_common
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from videopoet_jax.decoding.generator import Generator
from videopoet_jax.eval import lm_tasks
from videopoet_jax.tokenizers.patch_table import PatchTableTokenizer
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("checkpoint", None, "LM export or workdir (default: the bundled model).")
flags.DEFINE_integer("num", 48, "Clips of the split.")
flags.DEFINE_enum("split", "validation", ["validation", "test"], "Which seeds.")
flags.DEFINE_integer("batch_size", 16, "Sequences per forward pass.")
flags.DEFINE_string("out", "bench/object_patches.json", "Where the JSON line is also written.")
FLAGS = flags.FLAGS

# A near miss differs from the true patch in at most this many pixels (of 64).
NEAR_PIXELS = 8
# Pixels differ when a channel differs by more than this (of 255).
PIXEL_TOLERANCE = 10
# The most likely ids a near miss is looked for among.
TOP = 50


def main(argv):
  del argv
  quiet_unless_verbose()
  start = time.time()
  gen = Generator.load(FLAGS.checkpoint)
  if not isinstance(gen.video_tokenizer, PatchTableTokenizer):
    raise SystemExit("this LM's video tokenizer is not a patch table")
  table = np.asarray(gen.video_tokenizer.first[...]).astype(np.int32)  # [ids, p*p*3]
  pixels = table.shape[1] // 3
  examples = lm_tasks.split_examples(FLAGS.num, split=FLAGS.split)
  ids = bench_common.batched(gen.encode_video, np.stack([e["video"] for e in examples]), FLAGS.batch_size)
  kinds = {"background": [], "object_start": [], "object_continuing": []}
  for i in range(0, len(examples), FLAGS.batch_size):
    rows = range(i, min(i + FLAGS.batch_size, len(examples)))
    captions = [examples[r]["caption"] for r in rows]
    batch = bench_common.caption_batch(gen, "text_to_image", captions, ids[i : i + len(rows)])
    logits = gen.model(jnp.asarray(batch.tokens), jnp.asarray(batch.prefix_length))
    video = slice(gen.vocab.video_base, gen.vocab.video_base + table.shape[0])
    log_probs = np.asarray(jax.nn.log_softmax(logits[..., video].astype(jnp.float32), axis=-1))
    for row, (r, p) in enumerate(zip(rows, batch.prefix_length, strict=True)):
      truth = ids[r][0].reshape(-1)  # text_to_image's output: the first latent frame
      probs = np.exp(log_probs[row, p - 1 : p - 1 + truth.size])  # [positions, ids]: each id's probability
      uniform = table[truth].reshape(truth.size, pixels, 3).std(axis=1).sum(-1) == 0
      started = False
      for k, (true_id, flat) in enumerate(zip(truth, uniform, strict=True)):
        kind = "background" if flat else ("object_continuing" if started else "object_start")
        started |= not flat
        top = np.argsort(-probs[k])[:TOP]
        differ = (np.abs(table[top] - table[true_id]).reshape(TOP, pixels, 3).max(-1) > PIXEL_TOLERANCE).sum(
          -1
        )
        near = (differ > 0) & (differ <= NEAR_PIXELS)
        kinds[kind].append(
          (
            probs[k, true_id],
            top[0] == true_id,
            probs[k, top[near]].sum(),
            probs[k, top[differ > NEAR_PIXELS]].sum(),
          )
        )
  report = {
    kind: dict(
      zip(
        ("p_true", "top1", "near_miss_mass", "far_top50_mass"),
        np.mean(np.asarray(v, np.float64), axis=0).round(3).tolist(),
        strict=True,
      ),
      n=len(v),
    )
    for kind, v in kinds.items()
    if v
  }
  bench_common.emit(
    {"num": FLAGS.num, "split": FLAGS.split, **report, "seconds": round(time.time() - start, 1)}, FLAGS.out
  )


if __name__ == "__main__":
  app.run(main)
