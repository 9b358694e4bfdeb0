"""Causal 3D convolution building blocks shared by the video tokenizer.

Layout everywhere is channels-last video: `[B, T, H, W, C]`. "Causal" means output frame t depends only
on input frames <= t: time is padded with k_t - 1 zero frames in front and none behind, so frame 0 is
encoded alone and a still image is a valid 1-frame video.

Two options make a model spatially local and translation-equivariant, so that a flat region maps to the
same code wherever it lies (few, stable ids for flat scenes): `spatial_padding="edge"` (replicate the
border instead of zeros) and `norm="channel"` (normalize each position over its channels instead of
GroupNorm's per-frame statistics, which let the whole frame shift every position's code).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def space_to_depth(x: jax.Array, factor: int) -> jax.Array:
  """Folds `factor x factor` pixel blocks into channels: `[B, T, H, W, C] -> [B, T, H/f, W/f, C*f*f]`."""
  if factor == 1:
    return x
  b, t, h, w, c = x.shape
  assert h % factor == 0 and w % factor == 0, (x.shape, factor)
  x = x.reshape(b, t, h // factor, factor, w // factor, factor, c)
  x = x.transpose(0, 1, 2, 4, 3, 5, 6)
  return x.reshape(b, t, h // factor, w // factor, factor * factor * c)


def depth_to_space(x: jax.Array, temporal: int, spatial: int) -> jax.Array:
  """Unfolds channels into time and space, then drops the first `temporal - 1` frames.

  `[B, T, H, W, C*temporal*spatial^2] -> [B, T*temporal - (temporal-1), H*spatial, W*spatial, C]`, so that
  1 + t latent frames become 1 + temporal*t frames (the causal inverse of a stride-`temporal` conv).
  """
  b, t, h, w, c = x.shape
  out_c = c // (temporal * spatial * spatial)
  assert out_c * temporal * spatial * spatial == c, (x.shape, temporal, spatial)
  x = x.reshape(b, t, h, w, temporal, spatial, spatial, out_c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  x = x.reshape(b, t * temporal, h * spatial, w * spatial, out_c)
  return x[:, temporal - 1 :]


# Config names of the spatial paddings -> jnp.pad modes.
SPATIAL_PADDINGS = {"zeros": "constant", "edge": "edge"}
NORMS = ("group", "channel")


class CausalConv3d(nnx.Module):
  """3D conv, causal in time ("T-Causal Conv" of MAGVIT-v2), 'same' padding in space.

  With `factorized=True` it is a (1, k, k) spatial conv and a (k, 1, 1) causal temporal conv ((2+1)D):
  about 12/27 of the FLOPs of a full 3x3x3 conv and several times faster on CPU.
  """

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    strides: tuple[int, int] = (1, 1),
    factorized: bool = False,
    use_bias: bool = True,
    spatial_padding: str = "zeros",
    spatial_kernel: int | None = None,
    *,
    rngs: nnx.Rngs,
  ):
    """`strides` is (temporal, spatial); `spatial_padding` "zeros" or "edge" (replicate the border);
    `spatial_kernel` the kernel's spatial size when it differs from its temporal `kernel_size` (1: the
    conv mixes time and channels only)."""
    if spatial_padding not in SPATIAL_PADDINGS:
      raise ValueError(f"spatial_padding must be one of {tuple(SPATIAL_PADDINGS)}, got {spatial_padding!r}")
    self.kernel_size = kernel_size
    self.spatial_kernel = kernel_size if spatial_kernel is None else spatial_kernel
    self.pad_mode = SPATIAL_PADDINGS[spatial_padding]
    self.temporal_stride, self.spatial_stride = strides
    self.factorized = factorized and kernel_size > 1
    k, st, ss, sk = kernel_size, self.temporal_stride, self.spatial_stride, self.spatial_kernel
    if self.factorized:
      # The temporal conv runs at the smaller channel count: an upsampling conv that widens 8x would
      # otherwise spend most of its FLOPs mixing time at the wide end.
      self.time_first = in_channels <= out_channels
      c_t = in_channels if self.time_first else out_channels
      # Spatial part as a 2D conv over frames folded into the batch: faster than a (1, k, k) 3D conv.
      self.spatial = nnx.Conv(
        in_channels, out_channels, (sk, sk), (ss, ss), padding="VALID", use_bias=use_bias, rngs=rngs
      )
      self.temporal = nnx.Conv(c_t, c_t, (k, 1, 1), (st, 1, 1), padding="VALID", use_bias=False, rngs=rngs)
    else:
      self.conv = nnx.Conv(
        in_channels, out_channels, (k, sk, sk), (st, ss, ss), padding="VALID", use_bias=use_bias, rngs=rngs
      )

  def _pad_space(self, x: jax.Array) -> jax.Array:
    p = self.spatial_kernel // 2  # 'same': H -> H / spatial_stride for even H.
    return jnp.pad(x, ((0, 0), (0, 0), (p, p), (p, p), (0, 0)), mode=self.pad_mode)

  def _pad_time(self, x: jax.Array) -> jax.Array:
    return jnp.pad(x, ((0, 0), (self.kernel_size - 1, 0), (0, 0), (0, 0), (0, 0)))

  def _spatial(self, x: jax.Array) -> jax.Array:
    b, t = x.shape[:2]
    x = self._pad_space(x)
    y = self.spatial(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])

  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, T, H, W, Cin] -> [B, 1 + (T-1)/st, H/ss, W/ss, Cout]`."""
    if self.factorized and self.time_first:
      return self._spatial(self.temporal(self._pad_time(x)))
    if self.factorized:
      return self.temporal(self._pad_time(self._spatial(x)))
    return self.conv(self._pad_time(self._pad_space(x)))


class FrameGroupNorm(nnx.Module):
  """GroupNorm over (H, W, channel group) of each frame separately, so time stays causal."""

  def __init__(self, channels: int, groups: int, affine: bool = True, *, rngs: nnx.Rngs):
    groups = _divisor_at_most(channels, groups)
    self.norm = nnx.GroupNorm(
      channels, num_groups=groups, epsilon=1e-5, use_bias=affine, use_scale=affine, rngs=rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    b, t = x.shape[:2]
    y = self.norm(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(x.shape)


def frame_norm(channels: int, groups: int, norm: str = "group", affine: bool = True, *, rngs: nnx.Rngs):
  """A norm that keeps time causal: "group" (FrameGroupNorm, statistics over each frame) or "channel"
  (LayerNorm over the channels of each position alone: spatially local)."""
  if norm == "group":
    return FrameGroupNorm(channels, groups, affine, rngs=rngs)
  if norm == "channel":
    return nnx.LayerNorm(channels, epsilon=1e-5, use_bias=affine, use_scale=affine, rngs=rngs)
  raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _divisor_at_most(n: int, limit: int) -> int:
  return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


class ResBlock(nnx.Module):
  """GN + Swish -> conv X->Y -> GN + Swish -> conv Y->Y, plus a 1x1x1 shortcut when X != Y."""

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    groups: int,
    factorized: bool,
    spatial_padding: str = "zeros",
    norm: str = "group",
    spatial_kernel: int = 3,
    *,
    rngs: nnx.Rngs,
  ):
    conv = dict(
      factorized=factorized,
      use_bias=False,
      spatial_padding=spatial_padding,
      spatial_kernel=spatial_kernel,
      rngs=rngs,
    )
    self.norm1 = frame_norm(in_channels, groups, norm, rngs=rngs)
    self.conv1 = CausalConv3d(in_channels, out_channels, **conv)
    self.norm2 = frame_norm(out_channels, groups, norm, rngs=rngs)
    self.conv2 = CausalConv3d(out_channels, out_channels, **conv)
    self.shortcut = (
      CausalConv3d(in_channels, out_channels, kernel_size=1, use_bias=False, rngs=rngs)
      if in_channels != out_channels
      else None
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.conv1(nnx.swish(self.norm1(x)))
    h = self.conv2(nnx.swish(self.norm2(h)))
    skip = x if self.shortcut is None else self.shortcut(x)
    return skip + h


def resize_latent_nearest(q: jax.Array, frames: int, height: int, width: int) -> jax.Array:
  """Nearest-resizes latent codes `[B, t, h, w, D]` to `[B, frames, height, width, D]`, causally.

  Output frame f takes latent frame ceil(f / s) with s = (frames - 1) / (t - 1): latent 0 is frame 0 alone,
  latent j covers frames s(j-1)+1 .. sj, matching the encoder's causal downsampling.
  """
  t = q.shape[1]
  if t > 1 and frames > 1:
    s = (frames - 1) // (t - 1)
    index = (jnp.arange(frames) + s - 1) // s
    q = q[:, index]
  sh, sw = height // q.shape[2], width // q.shape[3]
  return jnp.repeat(jnp.repeat(q, sh, axis=2), sw, axis=3)


class AdaptiveGroupNorm(nnx.Module):
  """GN(affine=False)(x) * (1 + gamma(q)) + beta(q): the decoder's control by the quantized latent."""

  def __init__(self, channels: int, code_dim: int, groups: int, norm: str = "group", *, rngs: nnx.Rngs):
    self.norm = frame_norm(channels, groups, norm, affine=False, rngs=rngs)
    self.gamma = nnx.Linear(code_dim, channels, kernel_init=nnx.initializers.zeros, rngs=rngs)
    self.beta = nnx.Linear(code_dim, channels, kernel_init=nnx.initializers.zeros, rngs=rngs)

  def __call__(self, x: jax.Array, q: jax.Array) -> jax.Array:
    q = resize_latent_nearest(q, *x.shape[1:4])
    return self.norm(x) * (1.0 + self.gamma(q)) + self.beta(q)
