"""Command-line flags shared by the programs that generate (sample.py, python -m videopoet_jax.eval).

Importing this module defines them once: the model to load and the sampling controls.
"""

import math

from absl import flags

from videopoet_jax.decoding.generator import Generator, Sampling, override_sampling

flags.DEFINE_string("checkpoint", None, "LM export folder or training workdir (default: the bundled model).")
flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export (default: bundled).")
flags.DEFINE_string("audio_tokenizer", None, "Audio tokenizer export (default: bundled).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_float("temperature", None, "Sampling temperature (0 = greedy; default: the model's).")
flags.DEFINE_integer("top_k", None, "Keep the k most likely ids (0 = off; default: the model's).")
flags.DEFINE_float("top_p", None, "Nucleus sampling mass (1 = off; default: the model's).")
flags.DEFINE_float("guidance_scale", None, "Classifier-free guidance scale (1 = off; default: the model's).")
flags.DEFINE_float("audio_temperature", None, "Temperature of audio ids (default: the model's).")
flags.DEFINE_float("audio_guidance_scale", None, "Guidance of audio ids (default: the model's).")
FLAGS = flags.FLAGS


def load_generator() -> Generator:
  """The generator named by --checkpoint / --video_tokenizer / --audio_tokenizer."""
  return Generator.load(FLAGS.checkpoint, FLAGS.video_tokenizer, FLAGS.audio_tokenizer)


def sampling(defaults: dict[str, Sampling]) -> dict[str, Sampling]:
  """Per-modality sampling controls: the flags given, else `defaults` (the model's `sampling.json`).

  --temperature / --top_k / --top_p / --guidance_scale set both modalities; --audio_temperature and
  --audio_guidance_scale override the audio ones."""
  return override_sampling(
    defaults,
    audio={"temperature": FLAGS.audio_temperature, "guidance_scale": FLAGS.audio_guidance_scale},
    temperature=FLAGS.temperature,
    top_k=FLAGS.top_k,
    top_p=FLAGS.top_p,
    guidance_scale=FLAGS.guidance_scale,
  )


def check_sampling_flags() -> None:
  """ValueError (one line) for a sampling flag out of its range; run before the model loads."""
  ranges = {
    "temperature": (FLAGS.temperature, lambda v: v >= 0, ">= 0"),
    "audio_temperature": (FLAGS.audio_temperature, lambda v: v >= 0, ">= 0"),
    "top_k": (FLAGS.top_k, lambda v: v >= 0, ">= 0 (0 = off)"),
    "top_p": (FLAGS.top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
    "guidance_scale": (FLAGS.guidance_scale, lambda v: v >= 0, ">= 0 (1 = off)"),
    "audio_guidance_scale": (FLAGS.audio_guidance_scale, lambda v: v >= 0, ">= 0 (1 = off)"),
  }
  for name, (value, ok, wanted) in ranges.items():
    if value is not None and not (math.isfinite(value) and ok(value)):
      raise ValueError(f"--{name}={value:g} is out of range: it must be {wanted}")
