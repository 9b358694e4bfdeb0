"""How much the super-resolution stage adds over bicubic upscaling, and what its tokenizer allows at best.

  python bench/sr_quality.py [--sr=DIR] [--num=100] [--split=test] [--lm_samples=16]
      [--out=bench/sr_quality.json]

Renders `num` shapes_world clips of `split` at 128 pixels (the ground truth) and tokenizes their bicubic
64-pixel versions with the base model's video tokenizer: the base ids a perfect LM would give. Then, per
clip, against the 128-pixel ground truth:
  - `bicubic_of_base`: the base ids decoded (64 pixels) and upscaled bicubically (the baseline);
  - `sr`: the SR stage's sample from the base ids and the clip's caption, decoded at 128 (with `--sr`);
  - `high_res_ceiling`: the high-resolution tokenizer's own round trip of the ground truth (what a perfect
    SR stage would give: the stage predicts that tokenizer's ids);
  - `bicubic_of_low_res_pixels`: the 64-pixel input upscaled without any tokenizer (for reference).
Reports PSNR (mean dB with 95% intervals, and the per-clip gain of SR over the baseline), edge sharpness
(mean gradient magnitude on the ground truth's object boundaries, as a ratio to the ground truth's), and the
world analysis (colour, shape, direction as text_to_video scores them) read from the base output and from
the SR output (box-downsampled to the analysis' 64 pixels). With `--lm_samples=N`, the bundled LM also
samples text_to_video for N of the captions and its outputs go through the SR stage: seconds per clip of
each (batched alike) and the analysis of both. Without `--sr` (and no bundled SR stage) only the baseline
and the ceiling are measured: the ceiling to check before training a stage on a tokenizer. Prints one JSON
line.
"""

import dataclasses
import os
import platform
import time

import bench_common
import jax
import numpy as np
from absl import app, flags, logging

from videopoet_jax.data import media, shapes_world_dataset
from videopoet_jax.data import shapes_world as world
from videopoet_jax.decoding import super_resolution
from videopoet_jax.decoding.generator import Generator
from videopoet_jax.eval import intervals, shapes_scores, video_metrics
from videopoet_jax.tokenizers import pretrained
from videopoet_jax.training import sr as sr_training

flags.DEFINE_string("sr", None, "SR export or workdir (default: the bundled model's SR stage, if any).")
flags.DEFINE_string("high_res_tokenizer", None, "Tokenizer whose ceiling is measured (no SR stage).")
flags.DEFINE_integer("num", 100, "Clips scored.")
flags.DEFINE_enum("split", "test", ["validation", "test"], "Seeds: choose on validation, score on test.")
flags.DEFINE_integer("lm_samples", 0, "Captions sampled by the bundled LM and then raised by the SR stage.")
flags.DEFINE_integer("batch_size", 4, "Clips per call.")
flags.DEFINE_integer("steps", None, "SR sampling steps (default: the SR export's).")
flags.DEFINE_float("temperature", None, "SR sampling temperature (default: the SR export's).")
flags.DEFINE_float("text_guidance", None, "SR guidance scale on the text (default: the SR export's).")
flags.DEFINE_float("low_res_guidance", None, "SR guidance scale on the base ids (default: the SR export's).")
flags.DEFINE_bool(
  "write_sampling", False, "Write these sampling settings into the SR export (validation only)."
)
flags.DEFINE_string("out", "bench/sr_quality.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS
SCALE = 2
ANALYSIS = ("color", "shape", "direction")


def boundary(labels: np.ndarray) -> np.ndarray:
  """`[T, H, W]` bool: pixels whose label differs from a horizontal or vertical neighbour's (both sides of
  every object outline)."""
  edge = np.zeros(labels.shape, bool)
  dx, dy = labels[:, :, 1:] != labels[:, :, :-1], labels[:, 1:] != labels[:, :-1]
  edge[:, :, 1:] |= dx
  edge[:, :, :-1] |= dx
  edge[:, 1:] |= dy
  edge[:, :-1] |= dy
  return edge


def gradient_magnitude(video: np.ndarray) -> np.ndarray:
  """`[T, H, W]` central-difference gradient magnitude of a uint8 video's grey level, in [0, 1] units."""
  grey = video.astype(np.float64).mean(axis=-1) / 255.0
  gx, gy = np.zeros_like(grey), np.zeros_like(grey)
  gx[:, :, 1:-1] = (grey[:, :, 2:] - grey[:, :, :-2]) / 2
  gy[:, 1:-1] = (grey[:, 2:] - grey[:, :-2]) / 2
  return np.hypot(gx, gy)


def box_down(video: np.ndarray, factor: int) -> np.ndarray:
  """`[..., H, W, 3]` uint8 -> `[..., H/factor, W/factor, 3]` by averaging factor x factor blocks."""
  *lead, h, w, c = video.shape
  blocks = video.reshape(*lead, h // factor, factor, w // factor, factor, c).astype(np.float64)
  return np.round(blocks.mean(axis=(-4, -2))).astype(np.uint8)


def bicubic_up(video: np.ndarray, factor: int) -> np.ndarray:
  """`[N, T, H, W, 3]` uint8 -> `[N, T, H * factor, W * factor, 3]` uint8, bicubic."""
  n, t, h, w, c = video.shape
  up = jax.image.resize(media.to_model_range(video), (n, t, h * factor, w * factor, c), "cubic")
  return media.from_model_range(up)


def analysis_rates(videos: np.ndarray, truths: list[dict]) -> dict:
  samples = [shapes_scores.score_sample("text_to_video", v, t) for v, t in zip(videos, truths, strict=True)]
  return {name: intervals.summarize_rate([s[name] for s in samples]) for name in ANALYSIS}


def load_tokenizer(path: str):
  return pretrained.load_video_tokenizer(path)[0]


def load_stage() -> super_resolution.SuperResolver | None:
  if FLAGS.sr:
    return super_resolution.SuperResolver.load(FLAGS.sr)
  folder = os.path.join(pretrained.bundled_path("lm"), pretrained.SR_SUBDIR)
  return super_resolution.SuperResolver.load(folder) if os.path.exists(folder) else None


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  start = time.perf_counter()
  first = shapes_world_dataset.SPLIT_SEEDS[FLAGS.split]
  examples = [world.render(first + i, scale=SCALE) for i in range(FLAGS.num)]
  truth = np.stack([e["video"] for e in examples])  # [N, 17, 128, 128, 3]
  edges = np.stack([boundary(e["labels"]) for e in examples])
  truths = [shapes_scores.truth_from_example(world.render(first + i)) for i in range(FLAGS.num)]
  batched = lambda fn, x: bench_common.batched(fn, x, FLAGS.batch_size)  # noqa: E731

  stage = load_stage()
  base_tokenizer = load_tokenizer(os.path.join(pretrained.bundled_path("lm"), "video_tokenizer"))
  if stage is not None:
    high_tokenizer = stage.high_res_tokenizer
  else:
    high_tokenizer = load_tokenizer(FLAGS.high_res_tokenizer) if FLAGS.high_res_tokenizer else base_tokenizer
  downsample = jax.jit(lambda v: sr_training.downsample(media.to_model_range(v), SCALE))
  low = media.from_model_range(batched(downsample, truth))
  base_ids = batched(jax.jit(lambda v: base_tokenizer.encode(media.to_model_range(v))), low)
  base = media.from_model_range(batched(jax.jit(base_tokenizer.decode), base_ids))
  round_trip = jax.jit(lambda v: high_tokenizer.decode(high_tokenizer.encode(media.to_model_range(v))))
  outputs = {
    "bicubic_of_base": bicubic_up(base, SCALE),
    "high_res_ceiling": media.from_model_range(batched(round_trip, truth)),
    "bicubic_of_low_res_pixels": bicubic_up(low, SCALE),
  }
  result = {
    "machine": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "num": FLAGS.num,
    "split": FLAGS.split,
  }
  if stage is not None:
    chosen = {k: FLAGS[k].value for k in ("steps", "temperature", "text_guidance", "low_res_guidance")}
    sampling = dataclasses.replace(
      stage.default_sampling, **{k: v for k, v in chosen.items() if v is not None}
    )
    stage.default_sampling = sampling
    result["sr_sampling"] = dataclasses.asdict(sampling)
    if FLAGS.write_sampling:
      if FLAGS.split != "validation":
        raise app.UsageError("--write_sampling chooses settings: only on --split=validation")
      super_resolution.write_sampling(pretrained.export_folder(FLAGS.sr), sampling)
    captions = [e["caption"] for e in examples]
    sr = [
      stage.upscale(base_ids[i : i + FLAGS.batch_size], captions[i : i + FLAGS.batch_size], i)
      for i in range(0, FLAGS.num, FLAGS.batch_size)
    ]
    outputs["sr"] = np.concatenate(sr)
  psnrs = {name: video_metrics.psnr(truth, out) for name, out in outputs.items()}
  result["psnr_db"] = {name: intervals.summarize_mean(values) for name, values in psnrs.items()}

  def sharpness(videos) -> np.ndarray:
    return np.array([gradient_magnitude(v)[e].mean() for v, e in zip(videos, edges, strict=True)])

  truth_sharpness = sharpness(truth)
  result["edge_sharpness_ratio"] = {
    name: intervals.summarize_mean(sharpness(out) / truth_sharpness) for name, out in outputs.items()
  }
  result["analysis_64px"] = {"base": analysis_rates(base, truths)}
  if "sr" in outputs:
    gain = psnrs["sr"] - psnrs["bicubic_of_base"]
    result["sr_gain_over_bicubic_db"] = intervals.summarize_mean(gain, target=1.5)
    result["analysis_64px"]["sr"] = analysis_rates(box_down(outputs["sr"], SCALE), truths)
  if stage is not None and FLAGS.lm_samples:
    result["lm_samples"] = lm_samples(stage, examples[: FLAGS.lm_samples], truths[: FLAGS.lm_samples])
  result["seconds"] = round(time.perf_counter() - start, 1)
  bench_common.emit(result, FLAGS.out)


def lm_samples(stage, examples: list[dict], truths: list[dict]) -> dict:
  """text_to_video from the bundled LM on the examples' captions, then the SR stage on its outputs:
  seconds per clip of each (same batches, after a warm-up batch) and the analysis of both outputs."""
  gen = Generator.load()
  gen.attach_super_resolver(stage)
  captions = [e["caption"] for e in examples]
  size = FLAGS.batch_size
  gen.text_to_video(captions[:size], gen.default_sampling, 0)  # compiles
  gen.super_resolve(gen.text_to_video(captions[:size], gen.default_sampling, 0), captions[:size], 0)
  base, high, base_seconds, sr_seconds = [], [], 0.0, 0.0
  for i in range(0, len(captions), size):
    t0 = time.perf_counter()
    clips = gen.text_to_video(captions[i : i + size], gen.default_sampling, i)
    t1 = time.perf_counter()
    raised = gen.super_resolve(clips, captions[i : i + size], i)
    t2 = time.perf_counter()
    base.append(clips)
    high.append(raised)
    base_seconds, sr_seconds = base_seconds + t1 - t0, sr_seconds + t2 - t1
  base, high = np.concatenate(base), np.concatenate(high)
  return {
    "n": len(captions),
    "seconds_per_clip": {
      "base_text_to_video": base_seconds / len(captions),
      "sr": sr_seconds / len(captions),
    },
    "analysis_64px": {
      "base": analysis_rates(base, truths),
      "sr": analysis_rates(box_down(high, SCALE), truths),
    },
  }


if __name__ == "__main__":
  app.run(main)
