"""Where an LM's soundtrack misses the bounce clicks: video_to_audio, teacher-forced.

  python bench/click_onsets.py [--checkpoint=DIR] [--num=32] [--split=validation]
      [--out=bench/click_onsets.json]

Each shapes_world clip with a bounce is scored as video_to_audio's training sequence (its video ids, then
its true audio ids). Level 0's audio frames split into those at a click (`shapes_world.click_windows`) and
the rest. For each kind: the mean probability of the true id and how often it is the most likely id; and
per click, at its onset (the least likely true id in its window: the id no hum continues into), the true
id's probability and the most likely id's, as medians over clicks. The tokenizer's round trip keeps every
click (bench/shapes_analysis.py), so a low onset probability is the LM's. Prints one JSON line.
"""

import time

import bench_common
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from videopoet_jax.data import shapes_world as world
from videopoet_jax.decoding.generator import Generator
from videopoet_jax.eval import lm_tasks
from videopoet_jax.training.progress import quiet_unless_verbose

flags.DEFINE_string("checkpoint", None, "LM export or workdir (default: the bundled model).")
flags.DEFINE_integer("num", 32, "Clips with a bounce, from the split's first seeds.")
flags.DEFINE_enum("split", "validation", ["validation", "test"], "Which seeds.")
flags.DEFINE_integer("batch_size", 8, "Sequences per forward pass.")
flags.DEFINE_string("out", "bench/click_onsets.json", "Where the JSON line is also written.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  quiet_unless_verbose()
  start = time.time()
  gen = Generator.load(FLAGS.checkpoint)
  examples, rendered = [], 0
  while len(examples) < FLAGS.num:  # the split's first clips that have a bounce (about half of them)
    more = lm_tasks.split_examples(2 * FLAGS.num, split=FLAGS.split, start=rendered)
    examples += [e for e in more if e["bounce_frames"]]
    rendered += len(more)
  examples = examples[: FLAGS.num]
  videos = bench_common.batched(gen.encode_video, np.stack([e["video"] for e in examples]), FLAGS.batch_size)
  audios = bench_common.batched(gen.encode_audio, np.stack([e["audio"] for e in examples]), FLAGS.batch_size)
  frames = audios.shape[-1]
  at_click, elsewhere, onsets = [], [], []
  for i in range(0, len(examples), FLAGS.batch_size):
    rows = range(i, min(i + FLAGS.batch_size, len(examples)))
    batch = bench_common.records_batch(
      gen, "video_to_audio", [{"video": videos[r], "audio": audios[r]} for r in rows]
    )
    logits = gen.model(jnp.asarray(batch.tokens), jnp.asarray(batch.prefix_length))
    level0 = slice(gen.vocab.audio_base, gen.vocab.audio_base + gen.vocab.audio_codebook_size)
    probs = np.asarray(jax.nn.softmax(logits[..., level0].astype(jnp.float32), axis=-1))
    for row, (r, p) in enumerate(zip(rows, batch.prefix_length, strict=True)):
      truth = audios[r][0]  # level 0 comes first in the output (level-major)
      p_true = probs[row, p - 1 : p - 1 + frames][np.arange(frames), truth]
      top1 = probs[row, p - 1 : p - 1 + frames].argmax(-1) == truth
      near = np.zeros(frames, bool)
      for window in world.click_windows(examples[r]["bounce_frames"], frames, gen.frames):
        near[window] = True
        onset = window.start + int(np.argmin(p_true[window]))
        onsets.append((p_true[onset], probs[row, p - 1 + onset].max()))
      at_click += list(zip(p_true[near], top1[near], strict=True))
      elsewhere += list(zip(p_true[~near], top1[~near], strict=True))
  onsets = np.asarray(onsets, np.float64)  # [clicks, (p of the true id, p of the most likely id)]
  summary = lambda v: dict(
    zip(("p_true", "top1"), np.mean(np.asarray(v, np.float64), 0).round(3).tolist(), strict=True), n=len(v)
  )
  bench_common.emit(
    {
      "num": FLAGS.num,
      "split": FLAGS.split,
      "at_click": summary(at_click),
      "elsewhere": summary(elsewhere),
      "onset_p_true_median": round(float(np.median(onsets[:, 0])), 4),
      "onsets_above_0.1": round(float(np.mean(onsets[:, 0] > 0.1)), 3),
      # How sure the LM is of the id it prefers there (near 1: it expects no click at all).
      "onset_p_top_median": round(float(np.median(onsets[:, 1])), 3),
      "seconds": round(time.time() - start, 1),
    },
    FLAGS.out,
  )


if __name__ == "__main__":
  app.run(main)
