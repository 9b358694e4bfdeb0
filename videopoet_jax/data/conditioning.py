"""Conditioning clips the tasks need, made from an example before tokenization.

Inpainting masks a central box, outpainting everything outside a central box, at the token level: the
clip's own ids with the tokens of `token_mask` replaced by `<mask>` (so a masked stream costs no second
encoding; the tokens next to the box were encoded from the whole clip, as a user's edit of a given clip
is). Stylization conditions on a structure video (structure.structure_video): flow plus the
example's structure map (shapes_world: the object mask; clip_folder: edges or a precomputed map).
Bridges and backward extension condition on the clip played backwards (`reversed_clip`).
"""

from __future__ import annotations

import numpy as np

from videopoet_jax.data import structure

# Side of the central box as a fraction of the frame side: masked for inpainting, kept for outpainting.
INPAINT_BOX_FRACTION = 0.5
OUTPAINT_KEEP_FRACTION = 0.5
MASK_KINDS = ("inpaint", "outpaint")


def central_box(size: int, fraction: float) -> tuple[int, int]:
  """`(start, end)` pixel rows/columns of the centred box covering `fraction` of `size`."""
  side = int(round(size * fraction))
  start = (size - side) // 2
  return start, start + side


def pixel_mask(kind: str, height: int, width: int) -> np.ndarray:
  """`[H, W]` bool: True where `kind` ("inpaint" | "outpaint") hides the pixels."""
  if kind not in MASK_KINDS:
    raise ValueError(f"unknown mask kind {kind!r}: {MASK_KINDS}")
  fraction = INPAINT_BOX_FRACTION if kind == "inpaint" else OUTPAINT_KEEP_FRACTION
  (y0, y1), (x0, x1) = central_box(height, fraction), central_box(width, fraction)
  box = np.zeros((height, width), bool)
  box[y0:y1, x0:x1] = True
  return box if kind == "inpaint" else ~box


def token_mask(kind: str, height: int, width: int, spatial_factor: int) -> np.ndarray:
  """`[H / s, W / s]` bool: tokens whose `s` x `s` pixel cell touches the masked region."""
  mask = pixel_mask(kind, height, width)
  cells = mask.reshape(height // spatial_factor, spatial_factor, width // spatial_factor, spatial_factor)
  return cells.any(axis=(1, 3))


def structure_clip(example: dict) -> np.ndarray:
  """`[T, H, W, 3]` uint8 structure video of a shapes_world or clip_folder example."""
  if "structure" in example:
    guide = example["structure"]
  else:
    guide = np.where(np.asarray(example["mask"]) > 0, 255, 0).astype(np.uint8)
  return structure.structure_video(np.asarray(example["flow"]), guide)


def reversed_clip(example: dict) -> np.ndarray:
  """`[T, H, W, 3]` uint8: the example's clip played backwards. Encoded as its own clip, its first latent
  frame is the clip's last frame as an image (a bridge's end) and its continuation is the footage that
  leads into the clip (backward extension is continuation in reversed time)."""
  return np.ascontiguousarray(np.asarray(example["video"])[::-1])
