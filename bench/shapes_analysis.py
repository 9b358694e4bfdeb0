"""How well the shapes_world analysis reads ground truth, and the per-task ceiling the tokenizers leave.

  python bench/shapes_analysis.py [--num=100] [--out=bench/shapes_analysis.json]
      [--video_tokenizer=DIR --audio_tokenizer=DIR] [--split=validation]

Renders test-split clips (seeds never trained on; `compositional` test clips for text_to_video_withheld;
`--split=validation` for choosing between tokenizers, so that the test seeds only score the choice),
scores the ground truth itself, then its round trip through the video tokenizer (and, for the audio tasks,
the audio tokenizer) as if a perfect LM had produced its tokens: a task's ceiling. The tokenizers default
to the bundled model's own (`videopoet_jax/assets/lm/video_tokenizer`, `.../audio_tokenizer`).
Prints one JSON line: `{"ground_truth": {task: summary}, "round_trip": {task: summary}, ...}`, each summary
`shapes_scores.summarize`'s (value with its 95% interval and the target), plus `shape_template` rates (the
template-matching shape estimate, not scored) and `distinct_ids` (distinct video ids per test clip, and
distinct audio ids per level: how much id-level variety the LM has to model for one flat clip).
"""

import os
import platform
import time

import bench_common
import jax
import numpy as np
from absl import app, flags, logging

from videopoet_jax.data import media, shapes_world_dataset
from videopoet_jax.data import shapes_world as world
from videopoet_jax.eval import intervals, shapes_scores, video_metrics
from videopoet_jax.tokenizers import pretrained

flags.DEFINE_integer("num", 100, "Test clips per config.")
flags.DEFINE_enum("split", "test", ["validation", "test"], "Seeds: choose on validation, score on test.")
flags.DEFINE_integer("batch_size", 4, "Clips per tokenizer call.")
flags.DEFINE_string("out", "bench/shapes_analysis.json", "Where to write the JSON result.")
flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export (default: the bundled model's).")
flags.DEFINE_string("audio_tokenizer", None, "Audio tokenizer export (default: the bundled model's).")
FLAGS = flags.FLAGS
# Video tasks whose output is the clip (or its first frame) itself; extend is scored on the clip's tail.
CLIP_TASKS = ("text_to_video", "image_to_video", "extend", "inpaint", "outpaint", "stylize")


def _render(num: int, withheld=(), only_withheld=False) -> list[dict]:
  first = shapes_world_dataset.SPLIT_SEEDS[FLAGS.split]
  return [world.render(first + i, withheld=withheld, only_withheld=only_withheld) for i in range(num)]


def _score(task: str, outputs, truths) -> tuple[dict, list[dict]]:
  samples = [shapes_scores.score_sample(task, o, t) for o, t in zip(outputs, truths, strict=True)]
  return shapes_scores.summarize(task, samples), samples


def _template_rate(samples, truths) -> dict:
  flags_ = [s["analysis"]["shape_template"] == t["shape"] for s, t in zip(samples, truths, strict=True)]
  return intervals.summarize_rate(flags_)


def _video_tasks(clips, images, truths, withheld_clips, withheld_truths) -> dict:
  out = {}
  for task in CLIP_TASKS:
    out[task], samples = _score(task, clips, truths)
    if task == "text_to_video":
      out["text_to_video_shape_template"] = _template_rate(samples, truths)
  out["text_to_image"], samples = _score("text_to_image", images, truths)
  out["text_to_image_shape_template"] = _template_rate(samples, truths)
  out["text_to_video_withheld"], _ = _score("text_to_video_withheld", withheld_clips, withheld_truths)
  return out


def _audio_tasks(audios, truths) -> dict:
  return {task: _score(task, audios, truths)[0] for task in shapes_scores.AUDIO_TASKS}


def _batched(fn, items: np.ndarray) -> np.ndarray:
  return bench_common.batched(fn, items, FLAGS.batch_size)


def _spread(counts: list[int]) -> dict:
  return {"mean": float(np.mean(counts)), "min": int(np.min(counts)), "max": int(np.max(counts))}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  start = time.perf_counter()
  examples = _render(FLAGS.num)
  withheld = _render(FLAGS.num, shapes_world_dataset.COMPOSITIONAL_WITHHELD, only_withheld=True)
  truths = [shapes_scores.truth_from_example(e) for e in examples]
  withheld_truths = [shapes_scores.truth_from_example(e) for e in withheld]
  clips = np.stack([e["video"] for e in examples])
  withheld_clips = np.stack([e["video"] for e in withheld])
  audios = np.stack([e["audio"] for e in examples])

  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "num": FLAGS.num,
    "split": FLAGS.split,
  }
  result["ground_truth"] = {
    **_video_tasks(clips, clips[:, :1], truths, withheld_clips, withheld_truths),
    **_audio_tasks(audios, truths),
  }

  model = pretrained.bundled_path("lm")
  video_tokenizer, _ = pretrained.load_video_tokenizer(
    FLAGS.video_tokenizer or os.path.join(model, "video_tokenizer")
  )
  audio_tokenizer, _ = pretrained.load_audio_tokenizer(
    FLAGS.audio_tokenizer or os.path.join(model, "audio_tokenizer")
  )
  video_ids = _batched(jax.jit(video_tokenizer.encode), media.to_model_range(clips))
  audio_ids = _batched(jax.jit(audio_tokenizer.encode), audios)
  video_round_trip = jax.jit(lambda v: video_tokenizer.decode(video_tokenizer.encode(v)))
  rt = lambda x: video_metrics.round_trip(video_round_trip, x, FLAGS.batch_size)
  audio_rt = _batched(jax.jit(audio_tokenizer.decode), audio_ids)
  result["distinct_ids"] = {
    "video_per_clip": _spread([len(np.unique(ids)) for ids in video_ids]),
    "video_codebook": video_tokenizer.geometry.codebook_size,
    "audio_per_clip_and_level": _spread([len(np.unique(level)) for ids in audio_ids for level in ids]),
    "audio_codebook": audio_tokenizer.geometry.codebook_size,
  }
  result["round_trip"] = {
    **_video_tasks(rt(clips), rt(clips[:, :1]), truths, rt(withheld_clips), withheld_truths),
    **_audio_tasks(audio_rt, truths),
  }
  result["seconds"] = round(time.perf_counter() - start, 1)
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
