"""TFDS builder for the procedural world (`shapes_world`), written as array_record for grain.

  builder = shapes_world_dataset.make_builder("default", data_dir="data/tfds")
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]   # random access: source[i] -> dict of numpy arrays

Configs: `default` (one object), `two_objects`, `compositional` (chosen attribute combinations withheld
from train and validation; test holds only those), `compositional_turns` (the same, with a quarter of the
clips drawn to turn after their first second, 19% with room to: the continuation task learns to follow a
new prompt), `compositional_all_turns` (every clip drawn to turn: a continuation phase where the
prompt, not the motion so far, says where the object goes). Example i of a split is clip
`SPLIT_SEEDS[split] + i` (shuffling is disabled), so every example can be re-rendered from its `seed`
feature.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from videopoet_jax.data import shapes_world as world

# 1.1.0: the audio is stored zlib-compressed (same values; a pure hum compresses ~5x), so that a split
# fits TFDS's 1 GB in-memory sort (past it TFDS spills through TensorFlow, not a dependency here): 20,000
# clips are ~0.7 GB. 1.2.0: `next_caption` (the caption of the footage after the first second) and turning
# clips (`ShapesWorldConfig.turn_fraction`).
VERSION = "1.2.0"
# First seed of each split: disjoint ranges as long as a split has fewer than 2**30 examples.
SPLIT_SEEDS = {"train": 0, "validation": 1 << 30, "test": 2 << 30}
# Examples per split when a config does not say.
DEFAULT_SPLIT_SIZES = {"train": 1000, "validation": 100, "test": 100}
# Attribute combinations the `compositional` config never shows in train/validation (test holds only them).
COMPOSITIONAL_WITHHELD = (
  "color=red,shape=triangle",
  "color=green,shape=circle",
  "color=blue,shape=square",
  "shape=square,direction=left",
)
ZLIB = tfds.features.Encoding.ZLIB


@dataclasses.dataclass
class ShapesWorldConfig(tfds.core.BuilderConfig):
  """A variant of the world.

  Attributes:
    num_objects: objects per clip (1 or 2).
    withheld: attribute combinations ("color=red,shape=triangle") kept out of train and validation; the
      test split then holds only clips whose every object has one of them.
    turn_fraction: the share of clips whose objects turn at `shapes_world.TURN_FRAME`.
    num_train, num_validation, num_test: examples per split.
  """

  num_objects: int = 1
  withheld: tuple[str, ...] = ()
  turn_fraction: float = 0.0
  num_train: int = DEFAULT_SPLIT_SIZES["train"]
  num_validation: int = DEFAULT_SPLIT_SIZES["validation"]
  num_test: int = DEFAULT_SPLIT_SIZES["test"]

  def split_size(self, split: str) -> int:
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}[split]


BUILDER_CONFIGS = (
  ShapesWorldConfig(name="default", description="One object per clip."),
  ShapesWorldConfig(name="two_objects", description="Two objects per clip.", num_objects=2),
  ShapesWorldConfig(
    name="compositional",
    description="One object; withheld attribute combinations appear only in test.",
    withheld=COMPOSITIONAL_WITHHELD,
  ),
  ShapesWorldConfig(
    name="compositional_turns",
    description="compositional, a quarter of the clips drawn to turn after their first second.",
    withheld=COMPOSITIONAL_WITHHELD,
    turn_fraction=0.25,
  ),
  ShapesWorldConfig(
    name="compositional_all_turns",
    description="compositional, every clip drawn to turn after its first second (most have room to).",
    withheld=COMPOSITIONAL_WITHHELD,
    turn_fraction=1.0,
  ),
)


def object_features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict(
    {
      name: tfds.features.ClassLabel(names=list(world.ATTRIBUTE_VALUES[name]))
      for name in world.OBJECT_ATTRIBUTES
    }
  )


def features(num_objects: int) -> tfds.features.FeaturesDict:
  """The feature spec (shapes for `num_objects` objects)."""
  t, s = world.FRAMES, world.SIZE
  return tfds.features.FeaturesDict(
    {
      # [17, 64, 64, 3] uint8 RGB frames at world.FPS.
      "video": tfds.features.Tensor(shape=(t, s, s, 3), dtype=np.uint8, encoding=ZLIB),
      # [34000] float32 in [-1, 1], mono at world.SAMPLE_RATE, aligned with the frames.
      "audio": tfds.features.Tensor(shape=(world.AUDIO_SAMPLES,), dtype=np.float32, encoding=ZLIB),
      # [17, 64, 64] uint8: 0 background, k = object k (1-based) visible at that pixel.
      "mask": tfds.features.Tensor(shape=(t, s, s), dtype=np.uint8, encoding=ZLIB),
      # [17, 64, 64, 2] float32 (dx, dy) pixels the visible object moved since the previous frame.
      "flow": tfds.features.Tensor(shape=(t, s, s, 2), dtype=np.float32, encoding=ZLIB),
      "caption": tfds.features.Text(),
      # The caption of the footage from shapes_world.TURN_FRAME on (the caption where nothing turns).
      "next_caption": tfds.features.Text(),
      "background": tfds.features.ClassLabel(names=list(world.BACKGROUNDS)),
      # One entry per object: shape, size, color, direction class ids, each [num_objects] int64.
      "objects": tfds.features.Sequence(object_features(), length=num_objects),
      # Frames at which any object bounced (each adds a click to the audio).
      "bounce_frames": tfds.features.Sequence(np.int32),
      # The clip's seed: world.render(seed, ...) re-creates it.
      "seed": np.int64,
    }
  )


def to_example(clip: dict) -> dict:
  """shapes_world.render output -> the feature dict this builder writes."""
  return {
    "video": clip["video"],
    "audio": clip["audio"],
    "mask": clip["labels"],
    "flow": clip["flow"],
    "caption": clip["caption"],
    "next_caption": clip["next_caption"],
    "background": clip["background"],
    "objects": {name: [o[name] for o in clip["objects"]] for name in world.OBJECT_ATTRIBUTES},
    "bounce_frames": np.asarray(clip["bounce_frames"], np.int32),
  }


class ShapesWorld(tfds.core.GeneratorBasedBuilder):
  """The procedural audio-visual world (see videopoet_jax/data/shapes_world.py)."""

  VERSION = tfds.core.Version(VERSION)
  BUILDER_CONFIGS = list(BUILDER_CONFIGS)
  # TFDS otherwise derives it through importlib_resources, which it does not install on Python >= 3.9.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=features(self.builder_config.num_objects),
      # Example i of a split is seed SPLIT_SEEDS[split] + i.
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    config = self.builder_config
    return {split: self._generate_examples(split) for split in SPLIT_SEEDS if config.split_size(split) > 0}

  def _generate_examples(self, split: str):
    config = self.builder_config
    for i in range(config.split_size(split)):
      seed = SPLIT_SEEDS[split] + i
      clip = world.render(
        seed,
        num_objects=config.num_objects,
        withheld=config.withheld,
        only_withheld=split == "test",
        turn_fraction=config.turn_fraction,
      )
      yield i, {**to_example(clip), "seed": seed}


def make_builder(name: str = "default", data_dir: str | None = None, **sizes: int) -> ShapesWorld:
  """The builder of config `name`; `sizes` (num_train=..., ...) override the split sizes.

  Overridden sizes get their own config name (e.g. `default_n8_4_4`), so builds of different sizes never
  share a folder.
  """
  base = {c.name: c for c in BUILDER_CONFIGS}.get(name)
  if base is None:
    raise ValueError(f"unknown shapes_world config {name!r}; known: {[c.name for c in BUILDER_CONFIGS]}")
  if sizes:
    config = dataclasses.replace(base, **sizes)
    config = dataclasses.replace(
      config, name=f"{name}_n{config.num_train}_{config.num_validation}_{config.num_test}"
    )
    return ShapesWorld(config=config, data_dir=data_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)
  return ShapesWorld(config=name, data_dir=data_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)
