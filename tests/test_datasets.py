"""The shapes_world TFDS dataset: features, determinism, and that captions, sound and bounces agree."""

import glob
import os

import librosa
import numpy as np
import pytest

from videopoet_jax.data import shapes_world as world
from videopoet_jax.data import shapes_world_dataset as dataset

SIZES = {"num_train": 24, "num_validation": 4, "num_test": 4}
# The world's definition from the datasets issue (the evaluation contract), written out independently.
SPEC_PITCH_HZ = {"red": 262, "green": 330, "blue": 392, "yellow": 523, "magenta": 659, "cyan": 784}
SPEC_COLORS = {
  "red": (220, 40, 40),
  "green": (40, 200, 60),
  "blue": (50, 80, 230),
  "yellow": (235, 220, 50),
  "magenta": (210, 60, 210),
  "cyan": (60, 210, 220),
}
SPEC_BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (245, 245, 245)}
SPEC_DIMENSIONS = {"circle": (6, 10), "square": (12, 20), "triangle": (14, 22)}  # small, large
# Median yin pitch must be within this fraction of the colour's pitch.
PITCH_TOLERANCE = 0.03
# A 10 ms window whose largest sample-to-sample step exceeds this holds a click (the hums' steps are < 0.2).
CLICK_STEP_THRESHOLD = 0.35


def _build(data_dir, name="default", **sizes):
  builder = dataset.make_builder(name, data_dir=str(data_dir), **(sizes or SIZES))
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope="module")
def default_builder(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("tfds"))


def _examples(builder, split):
  source = builder.as_data_source()[split]
  return [source[i] for i in range(len(source))]


def _names(builder, example):
  """Attribute strings of each object: [{"shape": "circle", ...}, ...] and the background name."""
  objects_feature = builder.info.features["objects"].feature
  objects = example["objects"]
  count = len(objects["shape"])
  names = [
    {k: objects_feature[k].int2str(int(objects[k][i])) for k in world.OBJECT_ATTRIBUTES} for i in range(count)
  ]
  return names, builder.info.features["background"].int2str(int(example["background"]))


def test_world_constants_match_the_spec():
  assert (world.FRAMES, world.FPS, world.SIZE, world.SAMPLE_RATE, world.AUDIO_SAMPLES) == (
    17,
    8,
    64,
    16_000,
    34_000,
  )
  assert (
    world.PITCH_HZ == SPEC_PITCH_HZ and world.COLORS == SPEC_COLORS and world.BACKGROUNDS == SPEC_BACKGROUNDS
  )
  for shape, (small, large) in SPEC_DIMENSIONS.items():
    assert (world.SHAPE_DIMENSIONS[(shape, "small")], world.SHAPE_DIMENSIONS[(shape, "large")]) == (
      small,
      large,
    )
  assert (world.HUM_AMPLITUDE, world.CLICK_AMPLITUDE, world.FADE_SECONDS, world.CLICK_SECONDS) == (
    0.3,
    0.5,
    0.01,
    0.01,
  )


def test_splits_sizes_and_disjoint_seeds(default_builder):
  seeds = {}
  for split, size in (("train", 24), ("validation", 4), ("test", 4)):
    examples = _examples(default_builder, split)
    assert len(examples) == size
    seeds[split] = {int(e["seed"]) for e in examples}
    assert seeds[split] == {dataset.SPLIT_SEEDS[split] + i for i in range(size)}
  assert not (seeds["train"] & seeds["validation"]) and not (seeds["train"] & seeds["test"])


def test_feature_shapes_dtypes_and_ranges(default_builder):
  palette = {tuple(c) for c in world.COLORS.values()}
  for example in _examples(default_builder, "train"):
    video, audio, mask, flow = example["video"], example["audio"], example["mask"], example["flow"]
    assert video.shape == (17, 64, 64, 3) and video.dtype == np.uint8
    assert audio.shape == (34_000,) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0.2
    assert mask.shape == (17, 64, 64) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert flow.shape == (17, 64, 64, 2) and flow.dtype == np.float32
    names, background = _names(default_builder, example)
    # Background pixels have the background colour, object pixels the object's colour.
    np.testing.assert_array_equal(
      video[mask == 0], np.broadcast_to(world.BACKGROUNDS[background], video[mask == 0].shape)
    )
    assert {tuple(c) for c in video[mask == 1]} <= {world.COLORS[names[0]["color"]]} <= palette
    assert (mask.reshape(17, -1).sum(1) > 0).all()  # the object is always in view
    assert (flow[mask == 0] == 0).all() and (flow[0] == 0).all()
    assert np.abs(flow).max() <= max(world.SPEED_RANGE) + 1e-4
    assert all(1 <= f < 17 for f in example["bounce_frames"])
    np.testing.assert_array_equal(video, world.render(int(example["seed"]))["video"])


def test_object_moves_in_captioned_direction(default_builder):
  for example in _examples(default_builder, "train"):
    names, _ = _names(default_builder, example)
    ys, xs = [], []
    for frame in example["mask"][: world.FRAMES_BEFORE_BOUNCE + 1]:
      y, x = np.nonzero(frame)
      ys.append(y.mean())
      xs.append(x.mean())
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    expected = world.DIRECTIONS[names[0]["direction"]]
    travelled = world.SPEED_RANGE[0] * world.FRAMES_BEFORE_BOUNCE * 0.9
    if expected == (0, 0):
      assert abs(dx) < 1e-6 and abs(dy) < 1e-6
    else:
      assert np.dot((dx, dy), expected) >= travelled, (names, dx, dy)


def test_build_is_deterministic(default_builder, tmp_path):
  again = _build(tmp_path)
  files = sorted(glob.glob(os.path.join(default_builder.data_dir, "*.array_record*")))
  assert len(files) == 3
  for path in files:
    other = os.path.join(again.data_dir, os.path.basename(path))
    with open(path, "rb") as a, open(other, "rb") as b:
      assert a.read() == b.read(), path


def test_caption_matches_attributes(default_builder):
  for example in _examples(default_builder, "train"):
    names, background = _names(default_builder, example)
    o = names[0]
    verb = "stays still" if o["direction"] == "still" else f"moves {o['direction']}"
    expected = f"a {o['size']} {o['color']} {o['shape']} {verb} on a {background} background"
    assert example["caption"].decode() == expected


def test_audio_pitch_matches_color(default_builder):
  for example in _examples(default_builder, "train")[:12]:
    names, _ = _names(default_builder, example)
    f0 = librosa.yin(example["audio"], fmin=200, fmax=1000, sr=world.SAMPLE_RATE, frame_length=1024)
    pitch = SPEC_PITCH_HZ[names[0]["color"]]
    assert abs(np.median(f0) / pitch - 1) < PITCH_TOLERANCE, (names[0]["color"], np.median(f0))


def _click_frames(audio):
  """Video frames whose first 10 ms hold a click, found from the audio alone (sample-to-sample steps)."""
  window = int(world.CLICK_SECONDS * world.SAMPLE_RATE)
  steps = np.abs(np.diff(audio, prepend=audio[0]))
  frames = set()
  for start in range(0, len(audio) - window + 1, window):
    if steps[start : start + window].max() > CLICK_STEP_THRESHOLD:
      frames.add(int(round(start / world.SAMPLE_RATE * world.FPS)))
  return frames


def test_bounce_clicks_land_on_bounce_frames(default_builder):
  bounced = 0
  for example in _examples(default_builder, "train"):
    bounces = {int(f) for f in example["bounce_frames"]}
    bounced += bool(bounces)
    assert _click_frames(example["audio"]) == bounces
    # The object's velocity flips at each bounce frame.
    for frame in bounces:
      before = example["flow"][frame - 1][example["mask"][frame - 1] > 0].mean(0) if frame > 1 else None
      after = example["flow"][frame][example["mask"][frame] > 0].mean(0)
      if before is not None:
        assert np.dot(before, after) < np.dot(before, before), (frame, before, after)
  assert bounced >= 3  # the check above ran on clips that do bounce


def test_two_objects(tmp_path):
  builder = _build(tmp_path, "two_objects", num_train=6, num_validation=1, num_test=1)
  for example in _examples(builder, "train"):
    names, background = _names(builder, example)
    assert len(names) == 2 and set(np.unique(example["mask"])) <= {0, 1, 2}
    phrases = example["caption"].decode().removesuffix(f" on a {background} background").split(" and ")
    assert [p.split()[1:4] for p in phrases] == [[o["size"], o["color"], o["shape"]] for o in names]
    f0 = librosa.yin(example["audio"], fmin=200, fmax=1000, sr=world.SAMPLE_RATE, frame_length=2048)
    assert np.abs(example["audio"]).max() <= 1.0 and np.isfinite(f0).all()


def test_compositional_withholds_combinations(tmp_path):
  builder = _build(tmp_path, "compositional", num_train=30, num_validation=4, num_test=6)
  for split, only_withheld in (("train", False), ("validation", False), ("test", True)):
    for example in _examples(builder, split):
      names, background = _names(builder, example)
      attrs = world.Attributes(**names[0], background=background)
      assert world.matches(attrs, dataset.COMPOSITIONAL_WITHHELD) == only_withheld, (split, attrs)


def test_unknown_config_and_bad_combination():
  with pytest.raises(ValueError, match="unknown shapes_world config"):
    dataset.make_builder("three_objects")
  with pytest.raises(ValueError, match="bad attribute combination"):
    world.parse_combination("color=purple")


def _centroid(mask):
  y, x = np.nonzero(mask)
  return np.array([x.mean(), y.mean()])


# (config, fewest and most of 40 clips that turn): about a quarter, or nearly all.
@pytest.mark.parametrize(
  "config,fewest,most", [("compositional_turns", 4, 20), ("compositional_all_turns", 34, 40)]
)
def test_turning_clips_follow_their_next_caption_from_the_turn_frame(tmp_path, config, fewest, most):
  builder = _build(tmp_path, config, num_train=40, num_validation=1, num_test=1)
  turned = 0
  for example in _examples(builder, "train"):
    names, background = _names(builder, example)
    plain = world.render(int(example["seed"]), withheld=dataset.COMPOSITIONAL_WITHHELD)
    caption, next_caption = example["caption"].decode(), example["next_caption"].decode()
    # The first second is the clip without turns, whatever follows.
    np.testing.assert_array_equal(example["video"][: world.TURN_FRAME], plain["video"][: world.TURN_FRAME])
    if caption == plain["caption"]:
      assert next_caption == caption
      np.testing.assert_array_equal(example["video"], plain["video"])
      continue
    turned += 1
    o = names[0]
    then = next_caption.split(" moves ")[1].split(" on a ")[0]
    obj = f"a {o['size']} {o['color']} {o['shape']}"
    first = "stays still, then moves" if o["direction"] == "still" else f"moves {o['direction']}, then"
    assert caption == f"{obj} {first} {then} on a {background} background"
    assert next_caption == f"{obj} moves {then} on a {background} background"
    assert then != o["direction"]
    # From the frame before the turn, TURN_ROOM_FRAMES frames go the new way at the world's speed.
    start = world.TURN_FRAME - 1
    moved = _centroid(example["mask"][start + world.TURN_ROOM_FRAMES]) - _centroid(example["mask"][start])
    along = np.dot(moved, world.DIRECTIONS[then])
    assert along >= world.SPEED_RANGE[0] * world.TURN_ROOM_FRAMES * 0.9, (caption, moved)
  assert fewest <= turned <= most
