"""The super-resolution stage at sampling time: a base clip's ids and caption -> a clip 2x larger.

An SR export (training/sr.py) holds the SR transformer, its text model, its high-resolution tokenizer and,
once chosen on validation seeds, its sampling settings (`sampling.json`).
`SuperResolver.sample_ids` runs MAGVIT's non-autoregressive sampler (decoding/masked_sampler.py) with
guidance on the text and on the low-resolution ids, one jitted call for a whole batch; `upscale` decodes
the result to pixels. The low-resolution ids must be the base model's video tokenizer's (the one the stage
was trained with, `config.data.low_res_tokenizer`).

Guidance needs up to three forward passes a step (both conditions, the low-resolution one alone, neither);
at a low-resolution scale of 1 the "neither" pass cancels out of `two_condition_guidance` and is skipped,
and at both scales 1 only the conditional pass runs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from videopoet_jax.data import media, token_shards
from videopoet_jax.decoding import masked_sampler
from videopoet_jax.model import sr_transformer
from videopoet_jax.tokenizers import pretrained, text


@dataclasses.dataclass(frozen=True)
class SRSampling:
  """The sampler's settings (configs/sr.py `sampling`, which holds the defaults): reveal steps, temperature
  (0: greedy), and the guidance scales on the text and on the low-resolution condition (1: none)."""

  steps: int
  temperature: float
  text_guidance: float
  low_res_guidance: float


def guided_logits(model, ids, hidden, low_res_ids, text_ids, text_scale: float, low_res_scale: float):
  """`[B, T, H, W, K, V]` logits guided on both conditions (`masked_sampler.two_condition_guidance`),
  running only the passes the scales need (module docstring); one batched model call."""
  b = ids.shape[0]
  keeps = [(True, True)]  # both
  if text_scale != 1.0 or low_res_scale != 1.0:
    keeps.append((False, True))  # the low-resolution condition alone
  if low_res_scale != 1.0:
    keeps.append((False, False))  # neither
  n = len(keeps)
  tile = lambda x: jnp.concatenate([x] * n, axis=0)  # noqa: E731
  keep_text = jnp.repeat(jnp.array([k[0] for k in keeps]), b)
  keep_low_res = jnp.repeat(jnp.array([k[1] for k in keeps]), b)
  logits = model(tile(ids), tile(hidden), tile(low_res_ids), tile(text_ids), keep_text, keep_low_res)
  parts = jnp.split(logits, n, axis=0)
  both = parts[0]
  low_res_only = parts[1] if n > 1 else both
  neither = parts[2] if n > 2 else low_res_only
  return masked_sampler.two_condition_guidance(both, low_res_only, neither, text_scale, low_res_scale)


# An SR export's sampling settings, chosen on validation seeds (`bench/sr_quality.py --write_sampling`);
# absent: the training config's `sampling` section.
SAMPLING_FILE = "sampling.json"


def read_sampling(folder: str, config: ml_collections.ConfigDict) -> SRSampling:
  """`folder/SAMPLING_FILE`'s settings, else `config.sampling`'s."""
  path = os.path.join(folder, SAMPLING_FILE)
  if not os.path.exists(path):
    return SRSampling(**config.sampling.to_dict())
  with open(path) as f:
    return SRSampling(**json.load(f))


def write_sampling(folder: str, sampling: SRSampling) -> None:
  with open(os.path.join(folder, SAMPLING_FILE), "w") as f:
    json.dump(dataclasses.asdict(sampling), f, indent=1)


class SuperResolver:
  """The SR transformer, its config, text model and high-resolution tokenizer."""

  def __init__(self, model, config: ml_collections.ConfigDict, high_res_tokenizer, text_tokenizer):
    self.model, self.config = model, config
    self.high_res_tokenizer, self.text_tokenizer = high_res_tokenizer, text_tokenizer
    self.default_sampling = SRSampling(**config.sampling.to_dict())
    self._decode = jax.jit(lambda ids: self.high_res_tokenizer.decode(ids))

  @classmethod
  def load(cls, path: str) -> SuperResolver:
    """From an SR export folder or training workdir; FileNotFoundError / ValueError when it is not one."""
    model, config = pretrained.load(path, sr_transformer.build, "sr")
    folder = pretrained.export_folder(path)
    tokenizer, _ = pretrained.load_video_tokenizer(os.path.join(folder, pretrained.HIGH_RES_TOKENIZER))
    resolver = cls(
      model, config, tokenizer, text.TextTokenizer(os.path.join(folder, token_shards.TEXT_MODEL))
    )
    resolver.default_sampling = read_sampling(folder, config)
    return resolver

  @property
  def low_res_grid(self) -> tuple[int, int, int]:
    return sr_transformer.low_res_grid(self.config.model.grid)

  def text_ids(self, prompts: list[str | None]) -> np.ndarray:
    """`[N, data.text_length]` ids (an empty or None prompt: all padding, as a dropped text)."""
    return self.text_tokenizer.encode_batch(prompts, self.config.data.text_length)

  def sample_ids(
    self, low_res_ids: np.ndarray, prompts: list[str | None], seed: int, sampling: SRSampling | None = None
  ) -> np.ndarray:
    """`[N, *low_res_grid]` base ids and N prompts -> `[N, *model.grid]` high-resolution ids; deterministic
    for `seed`."""
    low_res_ids = np.asarray(low_res_ids, np.int32)
    if low_res_ids.shape[1:] != self.low_res_grid or len(prompts) != len(low_res_ids):
      raise ValueError(
        f"low_res_ids {low_res_ids.shape} and {len(prompts)} prompts: want [N, {self.low_res_grid}] ids "
        "and one prompt per clip"
      )
    sampling = sampling or self.default_sampling
    graphdef, state = nnx.split(self.model)
    return np.asarray(
      _sample(graphdef, state, low_res_ids, self.text_ids(prompts), jax.random.key(seed), sampling)
    )

  def upscale(self, low_res_ids, prompts, seed: int, sampling: SRSampling | None = None) -> np.ndarray:
    """`sample_ids`, decoded: `[N, T, 2S, 2S, 3]` uint8."""
    ids = self.sample_ids(low_res_ids, prompts, seed, sampling)
    return media.from_model_range(self._decode(ids))


@functools.partial(jax.jit, static_argnums=(0, 5))
def _sample(graphdef, state, low_res_ids, text_ids, key, sampling: SRSampling) -> jax.Array:
  model = nnx.merge(graphdef, state)
  n = low_res_ids.shape[0]
  grid = model.grid

  def logits_fn(flat_ids, hidden):
    shape = (n, *grid)
    logits = guided_logits(
      model, flat_ids.reshape(shape), hidden.reshape(shape), low_res_ids, text_ids,
      sampling.text_guidance, sampling.low_res_guidance,
    )  # fmt: skip
    return logits.reshape(n, int(np.prod(grid)), *logits.shape[4:])

  flat = masked_sampler.sample(logits_fn, key, n, int(np.prod(grid)), sampling.steps, sampling.temperature)
  return flat.reshape(n, *grid)
