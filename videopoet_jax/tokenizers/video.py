"""MAGVIT-v2 video tokenizer: causal 3D CNN encoder/decoder around lookup-free quantization.

Pixels `[B, T, H, W, 3]` in [-1, 1] with T = 1 + s_t*k map to ids `[B, 1 + k, H/s, W/s]` in [0, 2^bits),
where s_t (4 in every shipped config) and s (8) come from the config. A still image is a 1-frame video
and encodes to exactly the first latent frame of any video that starts with it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from videopoet_jax.tokenizers import lfq
from videopoet_jax.tokenizers.layers import (
  AdaptiveGroupNorm,
  CausalConv3d,
  ResBlock,
  depth_to_space,
  frame_norm,
  space_to_depth,
)


@dataclasses.dataclass(frozen=True)
class VideoGeometry:
  """Compression factors and shapes implied by a model config."""

  patch_size: int
  spatial_downsample: tuple[bool, ...]
  temporal_downsample: tuple[bool, ...]
  code_bits: int

  @classmethod
  def from_config(cls, model: ml_collections.ConfigDict) -> VideoGeometry:
    return cls(
      model.patch_size, tuple(model.spatial_downsample), tuple(model.temporal_downsample), model.code_bits
    )

  @property
  def spatial_factor(self) -> int:
    return self.patch_size * 2 ** sum(self.spatial_downsample)

  @property
  def temporal_factor(self) -> int:
    return 2 ** sum(self.temporal_downsample)

  @property
  def codebook_size(self) -> int:
    return 2**self.code_bits

  def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """`(T, H, W)` pixels -> `(t, h, w)` ids; raises ValueError for a shape the model cannot take."""
    st, s = self.temporal_factor, self.spatial_factor
    if (frames - 1) % st or height % s or width % s:
      raise ValueError(
        f"video of {frames} frames at {height}x{width} cannot be tokenized: need 1 + {st}k frames "
        f"and sides divisible by {s}"
      )
    return 1 + (frames - 1) // st, height // s, width // s

  def video_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
    """`(t, h, w)` ids -> `(T, H, W)` pixels."""
    return 1 + (t - 1) * self.temporal_factor, h * self.spatial_factor, w * self.spatial_factor


# Config keys that shape only the decoder: a run from `train.init_from` may change them (the decoder weights
# both share are copied, the others start fresh); with `train.trainable="decoder"` every id stays the same.
DECODER_ARCHITECTURE_KEYS = ("model.decoder_patch_hidden",)


def _channels(model: ml_collections.ConfigDict) -> list[int]:
  return [model.base_channels * m for m in model.channel_multipliers]


def _style(model: ml_collections.ConfigDict, spatial_kernel: int = 3) -> dict:
  """The conv/norm options every block of an encoder or decoder shares (exports older than an option lack
  its key)."""
  return {
    "factorized": model.factorized_conv,
    "spatial_padding": model.get("spatial_padding", "zeros"),
    "norm": model.get("norm", "group"),
    "spatial_kernel": spatial_kernel,
  }


def _conv_options(style: dict, rngs: nnx.Rngs) -> dict:
  return {k: style[k] for k in ("factorized", "spatial_padding", "spatial_kernel")} | {"rngs": rngs}


def _check_stage_flags(model: ml_collections.ConfigDict) -> None:
  levels = len(model.channel_multipliers)
  for name in ("spatial_downsample", "temporal_downsample"):
    if len(model[name]) != levels - 1:
      raise ValueError(f"model.{name} needs {levels - 1} entries (one per down stage), got {model[name]}")
  if model.get("encoder_spatial_kernel", 3) < 2 and any(model.spatial_downsample):
    raise ValueError(
      "model.encoder_spatial_kernel=1 would skip pixels at a strided downsampling: use patch_size"
    )


class Encoder(nnx.Module):
  """`[B, T, H, W, 3]` pixels -> `[B, t, h, w, code_bits]` continuous latents."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    _check_stage_flags(model)
    self.patch_size = model.patch_size
    channels = _channels(model)
    groups, style = model.norm_groups, _style(model, model.get("encoder_spatial_kernel", 3))
    conv = _conv_options(style, rngs)
    self.conv_in = CausalConv3d(3 * model.patch_size**2, channels[0], **conv)
    blocks, downs = [], []
    c_in = channels[0]
    for level, c in enumerate(channels):
      level_blocks = []
      for _ in range(model.num_res_blocks):
        level_blocks.append(ResBlock(c_in, c, groups, **style, rngs=rngs))
        c_in = c
      blocks.append(nnx.List(level_blocks))
      if level < len(channels) - 1:
        strides = (
          2 if model.temporal_downsample[level] else 1,
          2 if model.spatial_downsample[level] else 1,
        )
        downs.append(CausalConv3d(c, c, strides=strides, **conv))
    self.blocks = nnx.List(blocks)
    self.downs = nnx.List(downs)
    self.norm_out = frame_norm(c_in, groups, style["norm"], rngs=rngs)
    self.conv_out = CausalConv3d(c_in, model.code_bits, kernel_size=1, rngs=rngs)

  def __call__(self, video: jax.Array) -> jax.Array:
    h = self.conv_in(space_to_depth(video, self.patch_size))
    for level, level_blocks in enumerate(self.blocks):
      for block in level_blocks:
        h = block(h)
      if level < len(self.downs):
        h = self.downs[level](h)
    return self.conv_out(nnx.swish(self.norm_out(h)))


class Decoder(nnx.Module):
  """`[B, t, h, w, code_bits]` quantized codes -> `[B, T, H, W, 3]` pixels (unbounded; ~[-1, 1]).

  Every level's adaptive group norm is driven by the codes of the latent frame a pixel frame belongs to and,
  with `model.decoder_previous_codes`, by those of the latent frame before it as well (zeros before latent 0),
  so a latent frame can spend its bits on what changed. Both keep the decoder causal.
  """

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    _check_stage_flags(model)
    self.patch_size = model.patch_size
    channels = _channels(model)
    groups, bits, style = model.norm_groups, model.code_bits, _style(model)
    conv = _conv_options(style, rngs)
    # Exports written before the option existed lack the key: they were trained without it.
    self.previous_codes = model.get("decoder_previous_codes", False)
    norm_code_dim = bits * (2 if self.previous_codes else 1)
    c_in = channels[-1]
    self.conv_in = CausalConv3d(bits, c_in, **conv)
    mid = [ResBlock(c_in, c_in, groups, **style, rngs=rngs) for _ in range(model.num_res_blocks)]
    self.mid = nnx.List(mid)
    norms, blocks, ups, up_factors = [], [], [], []
    for level in reversed(range(len(channels))):
      c = channels[level]
      norms.append(AdaptiveGroupNorm(c_in, norm_code_dim, groups, style["norm"], rngs=rngs))
      level_blocks = []
      for _ in range(model.num_res_blocks):
        level_blocks.append(ResBlock(c_in, c, groups, **style, rngs=rngs))
        c_in = c
      blocks.append(nnx.List(level_blocks))
      if level > 0:
        st = 2 if model.temporal_downsample[level - 1] else 1
        ss = 2 if model.spatial_downsample[level - 1] else 1
        c_up = channels[level - 1] if model.narrow_upsample else c
        ups.append(CausalConv3d(c, c_up * st * ss * ss, **conv))
        up_factors.append((st, ss))
        c_in = c_up
    self.norms, self.blocks, self.ups = nnx.List(norms), nnx.List(blocks), nnx.List(ups)
    self.up_factors = tuple(up_factors)
    self.norm_out = frame_norm(c_in, groups, style["norm"], rngs=rngs)
    # One conv writes each patch_size^2 patch of pixels from the features around its grid position: a
    # linear mix of per-patch basis images. With `decoder_patch_hidden`, that conv writes a hidden layer
    # and a per-position linear layer the patch: an MLP that can place an edge anywhere in its patch.
    hidden = model.get("decoder_patch_hidden", 0)
    patch_channels = 3 * model.patch_size**2
    self.conv_out = CausalConv3d(c_in, hidden or patch_channels, **conv)
    self.patch_out = CausalConv3d(hidden, patch_channels, kernel_size=1, rngs=rngs) if hidden else None

  def __call__(self, codes: jax.Array) -> jax.Array:
    norm_codes = codes
    if self.previous_codes:
      previous = jnp.pad(codes, ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))[:, :-1]
      norm_codes = jnp.concatenate([codes, previous], axis=-1)
    h = self.conv_in(codes)
    for block in self.mid:
      h = block(h)
    for i, level_blocks in enumerate(self.blocks):
      h = self.norms[i](h, norm_codes)
      for block in level_blocks:
        h = block(h)
      if i < len(self.ups):
        h = depth_to_space(self.ups[i](h), *self.up_factors[i])
    h = self.conv_out(nnx.swish(self.norm_out(h)))
    if self.patch_out is not None:
      h = self.patch_out(nnx.swish(h))
    return depth_to_space(h, 1, self.patch_size)


def check_video(video, geometry: VideoGeometry) -> None:
  """Asserts the public input contract: `[B, T, H, W, 3]` float, and values in [-1, 1] when concrete."""
  if video.ndim != 5 or video.shape[-1] != 3:
    raise ValueError(f"video must be [B, T, H, W, 3], got shape {tuple(video.shape)}")
  geometry.latent_shape(*video.shape[1:4])
  if not jnp.issubdtype(video.dtype, jnp.floating):
    raise ValueError(
      f"video must be float in [-1, 1], got dtype {video.dtype} (convert uint8 with x/127.5-1)"
    )
  if not isinstance(video, jax.core.Tracer):
    lo, hi = float(jnp.min(video)), float(jnp.max(video))
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
      raise ValueError(f"video values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]")


def check_ids(ids, geometry: VideoGeometry) -> None:
  """Asserts `[B, t, h, w]` integer ids in [0, 2^bits) (values checked when concrete)."""
  if ids.ndim != 4:
    raise ValueError(f"video ids must be [B, t, h, w], got shape {tuple(ids.shape)}")
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise ValueError(f"video ids must be integers, got {ids.dtype}")
  if not isinstance(ids, jax.core.Tracer):
    lo, hi = int(jnp.min(ids)), int(jnp.max(ids))
    if lo < 0 or hi >= geometry.codebook_size:
      raise ValueError(f"video ids must lie in [0, {geometry.codebook_size}), got [{lo}, {hi}]")


class VideoTokenizer(nnx.Module):
  """The MAGVIT-v2 tokenizer: `encode(video) -> ids`, `decode(ids) -> video`, `ids <-> codes`."""

  def __init__(self, model: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    self.geometry = VideoGeometry.from_config(model)
    self.encoder = Encoder(model, rngs=rngs)
    self.decoder = Decoder(model, rngs=rngs)

  def encode_latents(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` in [-1, 1] -> continuous latents `[B, t, h, w, code_bits]`."""
    check_video(video, self.geometry)
    return self.encoder(video)

  def encode(self, video: jax.Array) -> jax.Array:
    """`[B, T, H, W, 3]` in [-1, 1] -> ids `[B, t, h, w]` int32 in [0, 2^code_bits)."""
    return lfq.codes_to_ids(self.encode_latents(video))

  def ids_to_codes(self, ids: jax.Array) -> jax.Array:
    """ids `[B, t, h, w]` -> codes `[B, t, h, w, code_bits]` in {-1, +1}."""
    return lfq.ids_to_codes(ids, self.geometry.code_bits)

  def codes_to_ids(self, codes: jax.Array) -> jax.Array:
    """codes `[B, t, h, w, code_bits]` -> ids `[B, t, h, w]`."""
    return lfq.codes_to_ids(codes)

  def decode_codes(self, codes: jax.Array) -> jax.Array:
    """codes `[B, t, h, w, code_bits]` -> video `[B, T, H, W, 3]` (unclipped)."""
    return self.decoder(codes)

  def decode(self, ids: jax.Array) -> jax.Array:
    """ids `[B, t, h, w]` -> video `[B, T, H, W, 3]` in [-1, 1]."""
    check_ids(ids, self.geometry)
    return jnp.clip(self.decoder(self.ids_to_codes(ids)), -1.0, 1.0)

  def __call__(self, video: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training forward: returns (reconstruction, latents z, straight-through codes)."""
    z = self.encode_latents(video)
    codes = lfq.quantize(z)
    return self.decoder(codes), z, codes


def param_count(module: nnx.Module) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param))))
