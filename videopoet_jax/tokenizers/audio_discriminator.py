"""SoundStream's discriminators (section III-D): multi-scale waveform (MelGAN) and STFT, hinge losses and
feature matching.

Every discriminator maps a waveform `[B, N]` to `(logits [B, T_k], features)`, where features are the
activations of its inner layers (for feature matching).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from videopoet_jax.tokenizers import spectral

LEAKY_SLOPE = 0.2
# MelGAN waveform discriminator layer shapes.
WAVE_STEM_KERNEL = 15
WAVE_GROUPED_KERNEL = 41
WAVE_GROUPED_STRIDE = 4
WAVE_GROUPED_LAYERS = 4
WAVE_GROUP_SIZE = 4
WAVE_HEAD_KERNELS = (5, 3)
# STFT discriminator: stem kernel, then per block a 3x3 conv and a strided conv; strides alternate.
STFT_STEM_KERNEL = (7, 7)
STFT_BLOCK_STRIDES = ((1, 2), (2, 2))


class GroupedConv1d(nnx.Module):
  """`nnx.Conv(in, out, (k,), strides=(s,), feature_group_count=g, padding="SAME")`, the same parameters
  (`kernel [k, in/g, out]`, `bias [out]`) and outputs, computed as k strided slices and one matmul per
  group: with XLA's grouped conv a waveform discriminator's gradient is 5x slower on CPU
  (bench/discriminators.py).

  `[B, N, in] -> [B, ceil(N / s), out]`."""

  def __init__(self, in_features: int, out_features: int, kernel: int, stride: int, groups: int, *, rngs):
    if in_features % groups or out_features % groups:
      raise ValueError(f"{groups} groups must divide {in_features} and {out_features} channels")
    self.kernel_size, self.stride, self.groups = kernel, stride, groups
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel, in_features // groups, out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, c = x.shape
    k, s, g = self.kernel_size, self.stride, self.groups
    length = -(-n // s)
    pad = max((length - 1) * s + k - n, 0)
    x = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    span = (length - 1) * s + 1
    patches = jnp.stack([x[:, i : i + span : s] for i in range(k)], axis=2)  # [B, L, k, in]
    patches = patches.reshape(b, length, k, g, c // g)
    kernel = self.kernel.value.reshape(k, c // g, g, -1)  # output channels are grouped contiguously
    out = jnp.einsum("blkgc,kcgo->blgo", patches, kernel).reshape(b, length, -1)
    return out + self.bias.value


class WaveDiscriminator(nnx.Module):
  """Conv -> grouped strided convs (x4 channels each, capped) -> two convs -> 1 logit per position."""

  def __init__(self, disc: ml_collections.ConfigDict, *, rngs):
    width = disc.wave_channels
    self.layers = nnx.List([nnx.Conv(1, width, (WAVE_STEM_KERNEL,), padding="SAME", rngs=rngs)])
    for _ in range(WAVE_GROUPED_LAYERS):
      out = min(width * WAVE_GROUPED_STRIDE, disc.wave_max_channels)
      groups = max(width // WAVE_GROUP_SIZE, 1)
      self.layers.append(
        GroupedConv1d(width, out, WAVE_GROUPED_KERNEL, WAVE_GROUPED_STRIDE, groups, rngs=rngs)
      )
      width = out
    self.layers.append(nnx.Conv(width, width, (WAVE_HEAD_KERNELS[0],), padding="SAME", rngs=rngs))
    self.head = nnx.Conv(width, 1, (WAVE_HEAD_KERNELS[1],), padding="SAME", rngs=rngs)

  def __call__(self, wave: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    x, features = wave[..., None], []
    for layer in self.layers:
      x = jax.nn.leaky_relu(layer(x), LEAKY_SLOPE)
      features.append(x)
    return self.head(x)[..., 0], features


class STFTDiscriminator(nnx.Module):
  """2D convs over the STFT's (real, imaginary) planes `[B, T, F, 2]`; a last conv spans all frequencies."""

  def __init__(self, disc: ml_collections.ConfigDict, *, rngs):
    self.window, self.hop = disc.stft_window, disc.stft_hop
    widths = [disc.stft_channels * m for m in disc.stft_channel_multipliers]
    self.stem = nnx.Conv(2, widths[0], STFT_STEM_KERNEL, padding="SAME", rngs=rngs)
    self.blocks = nnx.List()
    freq = self.window // 2 + 1
    cin = widths[0]
    for i, width in enumerate(widths):
      stride = STFT_BLOCK_STRIDES[i % len(STFT_BLOCK_STRIDES)]
      kernel = (stride[0] + 2, stride[1] + 2)
      self.blocks.append(
        nnx.List(
          [
            nnx.Conv(cin, cin, (3, 3), padding="SAME", rngs=rngs),
            nnx.Conv(cin, width, kernel, strides=stride, padding="SAME", rngs=rngs),
          ]
        )
      )
      cin = width
      freq = -(-freq // stride[1])
    self.head = nnx.Conv(cin, 1, (1, freq), padding="VALID", rngs=rngs)

  def __call__(self, wave: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    spectrum = spectral.stft(wave, self.window, self.hop)
    x = jax.nn.leaky_relu(self.stem(jnp.stack([spectrum.real, spectrum.imag], axis=-1)), LEAKY_SLOPE)
    features = [x]
    for conv, strided in self.blocks:
      x = jax.nn.leaky_relu(strided(jax.nn.leaky_relu(conv(x), LEAKY_SLOPE)), LEAKY_SLOPE)
      features.append(x)
    return self.head(x)[:, :, 0, 0], features


class AudioDiscriminators(nnx.Module):
  """One STFT discriminator plus `wave_scales` waveform discriminators on 2**i-times pooled audio."""

  def __init__(self, disc: ml_collections.ConfigDict, *, rngs):
    self.stft = STFTDiscriminator(disc, rngs=rngs)
    self.waves = nnx.List([WaveDiscriminator(disc, rngs=rngs) for _ in range(disc.wave_scales)])

  def __call__(self, wave: jax.Array) -> list[tuple[jax.Array, list[jax.Array]]]:
    """`[B, N]` -> one `(logits, features)` per discriminator (STFT first)."""
    outputs = [self.stft(wave)]
    for scale, disc in enumerate(self.waves):
      factor = 2**scale
      pooled = wave[:, : wave.shape[1] // factor * factor].reshape(wave.shape[0], -1, factor).mean(-1)
      outputs.append(disc(pooled))
    return outputs


def discriminator_loss(real_outputs, fake_outputs) -> jax.Array:
  """Hinge: mean over discriminators of E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(x)))]."""
  terms = [
    jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    for (real, _), (fake, _) in zip(real_outputs, fake_outputs, strict=True)
  ]
  return sum(terms) / len(terms)


def generator_loss(fake_outputs) -> jax.Array:
  """Hinge generator loss: mean over discriminators of E[max(0, 1 - D(G(x)))]."""
  return sum(jnp.mean(jax.nn.relu(1.0 - fake)) for fake, _ in fake_outputs) / len(fake_outputs)


def feature_matching_loss(real_outputs, fake_outputs) -> jax.Array:
  """Mean over discriminators and layers of mean |D_l(x) - D_l(G(x))| (real features held fixed)."""
  terms = [
    jnp.mean(jnp.abs(jax.lax.stop_gradient(r) - f))
    for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs, strict=True)
    for r, f in zip(real_features, fake_features, strict=True)
  ]
  return sum(terms) / len(terms)
