"""SoundStream audio tokenizer: causal SEANet 1D conv encoder/decoder around residual vector quantization.

A mono waveform `[B, N]` in [-1, 1] at `model.sample_rate` maps to ids `[B, L, F]` with F = N // hop and
hop = prod(model.strides) (320 at 16 kHz: 50 frames per second, 106 per 2.125 s clip); trailing samples
that do not fill a frame are dropped. Level l's ids are in [0, codebook_size). The LM lays levels out
level-major (all frames of level 0, then level 1, ...). Every encoder conv is causal: latent frame f
depends only on samples < (f + 1) * hop.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from videopoet_jax.tokenizers import rvq

# SEANet residual units: dilated conv kernel and the dilations of a block's three units.
RESIDUAL_KERNEL = 7
RESIDUAL_DILATIONS = (1, 3, 9)
# Kernels of the first encoder conv, the last encoder conv (to the embedding) and the decoder's ends.
STEM_KERNEL = 7
EMBED_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class AudioGeometry:
  """Sample rate, hop and id layout implied by a model config."""

  sample_rate: int
  strides: tuple[int, ...]
  levels: int
  codebook_size: int

  @classmethod
  def from_config(cls, model: ml_collections.ConfigDict) -> AudioGeometry:
    return cls(model.sample_rate, tuple(model.strides), model.levels, model.codebook_size)

  @property
  def hop(self) -> int:
    """Samples per latent frame."""
    return math.prod(self.strides)

  @property
  def frame_rate(self) -> float:
    return self.sample_rate / self.hop

  def frames(self, samples: int) -> int:
    """Latent frames for `samples` samples (a partial last frame is dropped)."""
    return samples // self.hop

  def samples(self, frames: int) -> int:
    return frames * self.hop

  def kbps(self, levels: int | None = None) -> float:
    """Bitrate using the first `levels` levels (default: all)."""
    levels = self.levels if levels is None else levels
    return levels * math.log2(self.codebook_size) * self.frame_rate / 1000.0


class CausalConv1d(nnx.Module):
  """Conv over `[B, N, C]` padded on the past only: output n sees inputs <= n (stride 1).

  With stride S and kernel 2S (SEANet downsampling) output frame f sees inputs < (f + 1) * S.
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, dilation: int = 1, rngs):
    pad = (kernel - 1) * dilation + 1 - stride
    self.conv = nnx.Conv(
      cin,
      cout,
      (kernel,),
      strides=(stride,),
      kernel_dilation=(dilation,),
      padding=[(pad, 0)],
      rngs=rngs,
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(x)


class CausalConvTranspose1d(nnx.Module):
  """Upsampling by `stride` over `[B, F, C]` -> `[B, F * stride, C']`, causal.

  Computed as a kernel-2 causal conv to `stride * C'` channels followed by depth-to-time: the same
  function class as SEANet's transposed conv with kernel 2*stride whose overlapping tail is cut (output
  frame f sees input frames f - 1 and f), but a plain conv, which XLA runs much faster on CPU.
  """

  def __init__(self, cin: int, cout: int, stride: int, *, rngs):
    self.stride, self.cout = stride, cout
    self.conv = CausalConv1d(cin, stride * cout, 2, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, f, _ = x.shape
    return self.conv(x).reshape(b, f * self.stride, self.cout)


class ResidualUnit(nnx.Module):
  """x + conv1(elu(conv7_dilated(elu(x)))) at constant width."""

  def __init__(self, channels: int, dilation: int, *, rngs):
    self.dilated = CausalConv1d(channels, channels, RESIDUAL_KERNEL, dilation=dilation, rngs=rngs)
    self.pointwise = CausalConv1d(channels, channels, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.pointwise(jax.nn.elu(self.dilated(jax.nn.elu(x))))


def _residual_units(channels: int, rngs) -> nnx.List:
  return nnx.List([ResidualUnit(channels, d, rngs=rngs) for d in RESIDUAL_DILATIONS])


class Encoder(nnx.Module):
  """`[B, N, 1]` -> `[B, N // hop, D]`: stem conv, then per stride 3 residual units and a strided conv
  that doubles the width, then a conv to the embedding dim."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    width = model.channels
    self.stem = CausalConv1d(1, width, STEM_KERNEL, rngs=rngs)
    self.units, self.downs = nnx.List(), nnx.List()
    for stride in model.strides:
      self.units.append(_residual_units(width, rngs))
      self.downs.append(CausalConv1d(width, 2 * width, 2 * stride, stride=stride, rngs=rngs))
      width *= 2
    self.embed = CausalConv1d(width, model.embedding_dim, EMBED_KERNEL, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.stem(x)
    for units, down in zip(self.units, self.downs, strict=True):
      for unit in units:
        x = unit(x)
      x = down(jax.nn.elu(x))
    return self.embed(jax.nn.elu(x))


class Decoder(nnx.Module):
  """`[B, F, D]` -> `[B, F * hop, 1]`: mirrors the encoder (transposed convs halve the width)."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs):
    width = model.decoder_channels * 2 ** len(model.strides)
    self.stem = CausalConv1d(model.embedding_dim, width, STEM_KERNEL, rngs=rngs)
    self.ups, self.units = nnx.List(), nnx.List()
    for stride in reversed(model.strides):
      self.ups.append(CausalConvTranspose1d(width, width // 2, stride, rngs=rngs))
      width //= 2
      self.units.append(_residual_units(width, rngs))
    self.out = CausalConv1d(width, 1, STEM_KERNEL, rngs=rngs)

  def __call__(self, z: jax.Array) -> jax.Array:
    x = self.stem(z)
    for up, units in zip(self.ups, self.units, strict=True):
      x = up(jax.nn.elu(x))
      for unit in units:
        x = unit(x)
    return self.out(jax.nn.elu(x))


def check_wave(wave: jax.Array, geometry: AudioGeometry) -> None:
  """Raises ValueError unless `wave` is `[B, N]` with N >= one hop."""
  if wave.ndim != 2:
    raise ValueError(f"audio must be [batch, samples] mono at {geometry.sample_rate} Hz, got {wave.shape}")
  if wave.shape[1] < geometry.hop:
    raise ValueError(f"audio of {wave.shape[1]} samples is shorter than one frame ({geometry.hop} samples)")


def check_ids(ids: jax.Array, geometry: AudioGeometry) -> None:
  """Raises ValueError unless `ids` is `[B, L', F]` with 1 <= L' <= levels."""
  if ids.ndim != 3 or not 1 <= ids.shape[1] <= geometry.levels:
    raise ValueError(f"audio ids must be [batch, 1..{geometry.levels} levels, frames], got {ids.shape}")


class AudioTokenizer(nnx.Module):
  """Encoder + residual VQ (codebooks in a `rvq.CodebookVariable`) + decoder."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.geometry = AudioGeometry.from_config(model)
    self.encoder = Encoder(model, rngs=rngs)
    self.decoder = Decoder(model, rngs=rngs)
    self.codebooks = rvq.CodebookVariable(
      rvq.CodebookState.create(model.levels, model.codebook_size, model.embedding_dim, rngs.params())
    )

  def crop(self, wave: jax.Array) -> jax.Array:
    """Drops the samples that do not fill a last frame: `[B, N]` -> `[B, frames(N) * hop]`."""
    check_wave(wave, self.geometry)
    return wave[:, : self.geometry.samples(self.geometry.frames(wave.shape[1]))]

  def encode_latents(self, wave: jax.Array) -> jax.Array:
    """`[B, N]` in [-1, 1] -> continuous latents `[B, N // hop, D]`."""
    return self.encoder(self.crop(wave)[..., None])

  def encode(self, wave: jax.Array) -> jax.Array:
    """`[B, N]` in [-1, 1] at the model's sample rate -> ids `[B, L, N // hop]` int32."""
    return rvq.quantize(self.codebooks.value, self.encode_latents(wave))[1]

  def decode_latents(self, quantized: jax.Array) -> jax.Array:
    """Quantized latents `[B, F, D]` -> waveform `[B, F * hop]` (unclipped)."""
    return self.decoder(quantized)[..., 0]

  def decode(self, ids: jax.Array) -> jax.Array:
    """Ids `[B, L', F]` (the first L' levels; fewer levels = lower bitrate) -> `[B, F * hop]` in [-1, 1]."""
    check_ids(ids, self.geometry)
    return jnp.clip(self.decode_latents(rvq.ids_to_vectors(self.codebooks.value, ids)), -1.0, 1.0)

  def __call__(self, wave: jax.Array, mask: jax.Array | None = None):
    """Training pass: `(reconstruction [B, N'], latents, ids [B, L, F], level inputs [L, B, F, D],
    commitment)` with N' = frames * hop and the levels of `mask [B, L]` (default all)."""
    z = self.encode_latents(wave)
    quantized, ids, residuals, commitment = rvq.quantize(self.codebooks.value, z, mask)
    return self.decode_latents(quantized), z, ids, residuals, commitment


def param_count(tokenizer: AudioTokenizer) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(tokenizer, nnx.Param)))
