"""One discriminator training step (gradient w.r.t. its weights), our ops against the XLA ops they replace.

  python bench/discriminators.py [--repeats=3] [--out=bench/discriminators.json]

The video discriminator of `configs/video_tokenizer.py:world_sharp` on a `[8, 17, 64, 64, 3]` batch, with the
separable blur pool (`discriminator.blur_pool_3d`) and with the depthwise 3D conv it replaced; the waveform
discriminator of `configs/audio_tokenizer.py:shapes_decoder` on its `[8, 8000]` batch, with
`audio_discriminator.GroupedConv1d` and with XLA's grouped conv (`nnx.Conv(feature_group_count=...)`). The
outputs are the same (tests/test_*_tokenizer_training.py); on CPU the grouped and depthwise convs are the
slow part of an adversarial step. Prints one JSON line: seconds per gradient (median) and the speed-up.
"""

import os
import platform

import bench_common
import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

from videopoet_jax.config_utils import load_config_file
from videopoet_jax.tokenizers import audio_discriminator
from videopoet_jax.tokenizers import discriminator as video_discriminator

flags.DEFINE_integer("repeats", 3, "Timed calls per variant (after one warm-up call).")
flags.DEFINE_string("out", "bench/discriminators.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _depthwise_blur_pool(x: jax.Array) -> jax.Array:
  """The [1, 2, 1]^3 blur pool as the depthwise 3D conv it was written as before."""
  taps = jnp.array([1.0, 2.0, 1.0])
  kernel = taps[:, None, None] * taps[None, :, None] * taps[None, None, :]
  kernel = jnp.broadcast_to((kernel / kernel.sum())[..., None, None], (3, 3, 3, 1, x.shape[-1]))
  return jax.lax.conv_general_dilated(
    x,
    kernel,
    (2, 2, 2),
    ((1, 1),) * 3,
    dimension_numbers=("NTHWC", "THWIO", "NTHWC"),
    feature_group_count=x.shape[-1],
  )


def _xla_grouped_conv(in_features, out_features, kernel, stride, groups, *, rngs):
  return nnx.Conv(
    in_features,
    out_features,
    (kernel,),
    strides=(stride,),
    feature_group_count=groups,
    padding="SAME",
    rngs=rngs,
  )


def _grad_seconds(make_model, batch: jax.Array, logits) -> float:
  graphdef, params = nnx.split(make_model(), nnx.Param)
  grad = jax.jit(jax.grad(lambda p: jnp.sum(logits(nnx.merge(graphdef, p)(batch)))))
  seconds, _ = bench_common.timed(lambda: grad(params), FLAGS.repeats)
  return seconds


def _compare(ours: float, theirs: float, names: tuple[str, str]) -> dict:
  return {
    f"{names[0]}_s": round(ours, 4),
    f"{names[1]}_s": round(theirs, 4),
    "speedup": round(theirs / ours, 2),
  }


def main(argv):
  del argv
  result = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}

  video = load_config_file(os.path.join(REPO, "configs", "video_tokenizer.py"), "world_sharp")
  clips = jax.random.uniform(
    jax.random.PRNGKey(0),
    (video.train.batch_size, video.data.frames, video.data.size, video.data.size, 3),
    minval=-1.0,
    maxval=1.0,
  )
  make_video = lambda: video_discriminator.Discriminator(video.disc, rngs=nnx.Rngs(0))  # noqa: E731
  ours = _grad_seconds(make_video, clips, lambda x: x)
  separable = video_discriminator.blur_pool_3d
  video_discriminator.blur_pool_3d = _depthwise_blur_pool
  try:
    theirs = _grad_seconds(make_video, clips, lambda x: x)
  finally:
    video_discriminator.blur_pool_3d = separable
  result["video_discriminator"] = _compare(ours, theirs, ("separable_blur_pool", "depthwise_conv"))

  audio = load_config_file(os.path.join(REPO, "configs", "audio_tokenizer.py"), "shapes_decoder")
  waves = jax.random.normal(jax.random.PRNGKey(0), (audio.train.batch_size, audio.data.clip_samples))
  make_wave = lambda: audio_discriminator.WaveDiscriminator(audio.disc, rngs=nnx.Rngs(0))  # noqa: E731
  ours = _grad_seconds(make_wave, waves, lambda out: out[0])
  grouped = audio_discriminator.GroupedConv1d
  audio_discriminator.GroupedConv1d = _xla_grouped_conv
  try:
    theirs = _grad_seconds(make_wave, waves, lambda out: out[0])
  finally:
    audio_discriminator.GroupedConv1d = grouped
  result["waveform_discriminator"] = _compare(ours, theirs, ("grouped_conv1d", "xla_grouped_conv"))
  bench_common.emit(result, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
