"""Command-line flags shared by the programs that generate (sample.py, python -m videopoet_jax.eval).

Importing this module defines them once: the model to load and the sampling controls.
"""

from absl import flags

from videopoet_jax.decoding.generator import Generator, Sampling

flags.DEFINE_string("checkpoint", None, "LM export folder or training workdir (default: the bundled model).")
flags.DEFINE_string("video_tokenizer", None, "Video tokenizer export (default: bundled).")
flags.DEFINE_string("audio_tokenizer", None, "Audio tokenizer export (default: bundled).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature (0 = greedy).")
flags.DEFINE_integer("top_k", 0, "Keep the k most likely ids (0 = off).")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = off).")
flags.DEFINE_float("guidance_scale", 1.0, "Classifier-free guidance scale (1 = off).")
flags.DEFINE_float("audio_temperature", None, "Temperature of audio ids (default: --temperature).")
flags.DEFINE_float("audio_guidance_scale", None, "Guidance of audio ids (default: --guidance_scale).")
FLAGS = flags.FLAGS


def load_generator() -> Generator:
  """The generator named by --checkpoint / --video_tokenizer / --audio_tokenizer."""
  return Generator.load(FLAGS.checkpoint, FLAGS.video_tokenizer, FLAGS.audio_tokenizer)


def sampling() -> dict[str, Sampling]:
  """Per-modality sampling controls from the flags (audio falls back to the video values)."""
  video = Sampling(FLAGS.temperature, FLAGS.top_k, FLAGS.top_p, FLAGS.guidance_scale)
  audio = Sampling(
    FLAGS.temperature if FLAGS.audio_temperature is None else FLAGS.audio_temperature,
    FLAGS.top_k,
    FLAGS.top_p,
    FLAGS.guidance_scale if FLAGS.audio_guidance_scale is None else FLAGS.audio_guidance_scale,
  )
  return {"video": video, "audio": audio}


def one_line(error: Exception) -> str:
  """`error: ...` on one line, whatever the library's message looked like."""
  return "error: " + " ".join(str(error).split())
