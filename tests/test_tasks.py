import ml_collections
import numpy as np
import pytest

from videopoet_jax import tasks
from videopoet_jax.tasks import mixture, registry, sequence

from conftest import load_config

CONFIG = load_config("lm", "tiny")
VOCAB = tasks.vocabulary(CONFIG)
INPAINT_MASK = np.array([[True, False], [False, False]])
LAYOUT = sequence.Layout.from_config(
  CONFIG.layout, {"inpaint_video": INPAINT_MASK, "outpaint_video": ~INPAINT_MASK}
)


def _record(seed=0, text_length=3):
  rng = np.random.default_rng(seed)
  video = lambda: rng.integers(0, VOCAB.video_size, LAYOUT.latent_shape)
  return {
    "video": video(),
    "audio": rng.integers(0, VOCAB.audio_codebook_size, (LAYOUT.audio_levels, LAYOUT.audio_frames)),
    "text": rng.integers(0, VOCAB.text_size, text_length),
    "next_text": rng.integers(0, VOCAB.text_size, text_length),
    "inpaint_video": video(),
    "outpaint_video": video(),
    "structure_video": video(),
    "reversed_video": video(),
  }


def _expected_parts(name, record):
  """What parse must give back, written out per task from the record (not through the registry)."""
  video, text, audio = record["video"], record["text"], record["audio"]
  reversed_video = record["reversed_video"]
  c = LAYOUT.context_frames
  masked = lambda ids, mask: np.where(mask[None], sequence.MASKED, ids)
  return {
    "unconditional_video": {"video": video},
    "text_to_video": {"text": text, "video": video},
    "text_to_image": {"text": text, "video[first]": video[:1]},
    "image_to_video": {"text": text, "video[first]": video[:1], "video[after_first]": video[1:]},
    "continuation": {
      "next_text": record["next_text"],
      "video[context]": video[:c],
      "video[after_context]": video[c:],
    },
    "inpaint": {"text": text, "inpaint_video": masked(record["inpaint_video"], INPAINT_MASK), "video": video},
    "outpaint": {
      "text": text,
      "outpaint_video": masked(record["outpaint_video"], ~INPAINT_MASK),
      "video": video,
    },
    "stylize": {"text": text, "structure_video": record["structure_video"], "video": video},
    "video_to_audio": {"video": video, "audio": audio},
    "audio_to_video": {"audio": audio, "video": video},
    "bridge": {
      "text": text,
      "video[first]": video[:1],
      "reversed_video[first]": reversed_video[:1],
      "video[after_first]": video[1:],
    },
    "backward": {
      "text": text,
      "reversed_video[context]": reversed_video[:c],
      "reversed_video[after_context]": reversed_video[c:],
    },
  }[name]


@pytest.mark.parametrize("name", registry.TASK_NAMES)
def test_every_task_round_trips_to_its_parts(name):
  task, record = registry.get(name), _record()
  seq = sequence.build(task, record, VOCAB, LAYOUT)
  parts = sequence.parse(task, np.concatenate([seq.tokens, [VOCAB.special("<pad>")] * 3]), VOCAB, LAYOUT)
  expected = _expected_parts(name, record)
  assert parts.keys() == expected.keys()
  for key, ids in expected.items():
    np.testing.assert_array_equal(parts[key], ids, err_msg=key)
  assert len(seq.tokens) == sequence.max_length(task, LAYOUT) - (LAYOUT.text_budget - 3) * any(
    p.modality == "text" for p in task.inputs
  )


@pytest.mark.parametrize("name", registry.TASK_NAMES)
def test_the_loss_mask_covers_exactly_the_outputs(name):
  task = registry.get(name)
  seq = sequence.build(task, _record(1), VOCAB, LAYOUT)
  begin = {"video": "<bov_o>", "audio": "<boa_o>"}[task.output.modality]
  assert seq.tokens[seq.prefix_length - 1] == VOCAB.special(begin)  # the prefix ends with the output's begin
  np.testing.assert_array_equal(seq.loss_mask, np.arange(len(seq.tokens)) >= seq.prefix_length)
  outputs = seq.tokens[seq.loss_mask]
  n = LAYOUT.part_length(task.output)
  modality = VOCAB.modality(outputs[:n])
  assert (modality == list(VOCAB.ranges()).index(task.output.modality)).all()
  closing = [
    VOCAB.special(t) for t in ({"video": "<eov_o>", "audio": "<eoa_o>"}[task.output.modality], "<eos>")
  ]
  assert list(outputs[n:]) == (closing if task.closed else [])
  # The prefix holds no output ids of its own: structural tokens, inputs only.
  assert (seq.segment_ids[seq.loss_mask][:n] == len(task.inputs) + 1).all()
  assert (seq.segment_ids[: seq.prefix_length] <= len(task.inputs)).all()


def test_text_to_image_leaves_the_output_open_and_image_to_video_conditions_on_the_first_frame():
  record = _record(2)
  t2i = sequence.build(registry.get("text_to_image"), record, VOCAB, LAYOUT)
  assert VOCAB.special("<eov_o>") not in t2i.tokens and VOCAB.special("<eos>") not in t2i.tokens
  np.testing.assert_array_equal(t2i.tokens[-4:], VOCAB.video_to_global(record["video"][0]).reshape(-1))
  i2v = sequence.build(registry.get("image_to_video"), record, VOCAB, LAYOUT)
  first = VOCAB.video_to_global(record["video"][0]).reshape(-1)
  start = list(i2v.tokens).index(VOCAB.special("<bov_i>")) + 1
  np.testing.assert_array_equal(i2v.tokens[start : start + 4], first)


def test_guidance_drop_removes_the_text_and_long_captions_are_cut():
  task = registry.get("text_to_video")
  record = _record(3, text_length=LAYOUT.text_budget + 5)
  full = sequence.build(task, record, VOCAB, LAYOUT)
  assert len(full.tokens) == sequence.max_length(task, LAYOUT)
  np.testing.assert_array_equal(
    sequence.parse(task, full.tokens, VOCAB, LAYOUT)["text"], record["text"][: LAYOUT.text_budget]
  )
  dropped = sequence.build(task, record, VOCAB, LAYOUT, drop=("text",))
  assert VOCAB.special("<bot_i>") not in dropped.tokens
  assert list(dropped.tokens[:3]) == [
    VOCAB.special("<bos>"),
    VOCAB.task("text_to_video"),
    VOCAB.special("<bov_o>"),
  ]


def test_text_embeddings_fill_placeholder_slots():
  task = registry.get("stylize")
  record = {k: v for k, v in _record(4).items() if k != "text"}
  record["text_embedding"] = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
  seq = sequence.build(task, record, VOCAB, LAYOUT)
  slots = np.flatnonzero(seq.text_slots >= 0)
  assert list(seq.text_slots[slots]) == [0, 1, 2]
  assert (seq.tokens[slots] == VOCAB.special("<emb>")).all() and seq.tokens[slots[0] - 1] == VOCAB.special(
    "<bot_i>"
  )
  batch = sequence.collate([seq], [0], len(seq.tokens) + 2, VOCAB, LAYOUT)
  assert batch.text_embedding.shape == (1, LAYOUT.text_budget, 5)
  np.testing.assert_array_equal(batch.text_embedding[0, :3], record["text_embedding"])


@pytest.mark.parametrize("name", registry.TASK_NAMES)
def test_output_segments_allow_exactly_the_built_outputs(name):
  task = registry.get(name)
  seq = sequence.build(task, _record(5), VOCAB, LAYOUT)
  outputs = seq.tokens[seq.loss_mask]
  runs = sequence.output_segments(task, VOCAB, LAYOUT)
  assert sum(count for _, _, count in runs) == len(outputs)
  allowed = [(lo, hi) for lo, hi, count in runs for _ in range(count)]
  assert all(lo <= t < hi for t, (lo, hi) in zip(outputs, allowed, strict=True))
  if name == "video_to_audio":  # each RVQ level has its own range
    assert [lo for lo, _, _ in runs[: LAYOUT.audio_levels]] == [
      VOCAB.audio_base + level * VOCAB.audio_codebook_size for level in range(LAYOUT.audio_levels)
    ]


def test_parse_and_build_reject_bad_input():
  task = registry.get("text_to_video")
  seq = sequence.build(task, _record(), VOCAB, LAYOUT)
  with pytest.raises(ValueError, match="expected <eos>"):
    sequence.parse(task, seq.tokens[:-1], VOCAB, LAYOUT)
  with pytest.raises(ValueError, match="task's token"):
    sequence.parse(registry.get("stylize"), seq.tokens, VOCAB, LAYOUT)
  with pytest.raises(ValueError, match="layout expects"):
    sequence.build(task, {**_record(), "video": np.zeros((2, 2, 2), int)}, VOCAB, LAYOUT)
  with pytest.raises(KeyError, match="unknown task"):
    registry.get("text_to_smell")


def _mixture(**overrides):
  config = load_config("lm", "demo").mixture
  for key, value in overrides.items():
    config[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  demo_layout = sequence.Layout.from_config(load_config("lm", "demo").layout)
  return mixture.Mixture(config, demo_layout, batch_size=16, batch_multiple=2, total_steps=1000, seed=0)


def test_mixture_groups_by_length_with_little_padding():
  plan = _mixture()
  assert sorted(n for g in plan.groups for n in g.tasks) == sorted(plan.weights)
  demo_layout = sequence.Layout.from_config(load_config("lm", "demo").layout)
  for group in plan.groups:
    lengths = [sequence.max_length(registry.TASKS[n], demo_layout) for n in group.tasks]
    assert group.length == max(lengths) and min(lengths) >= group.length / (1 + plan.config.length_tolerance)
    assert group.batch_size % 2 == 0 and group.batch_size * group.length <= 16 * max(
      g.length for g in plan.groups
    )


def test_mixture_is_deterministic_and_follows_the_image_schedule():
  # VideoPoet's schedule (the demo config shortens it): 90% images for the first 25% of steps, then 10%.
  plan = _mixture(early_fraction=0.25, early_image_share=0.9, late_image_share=0.1)
  assert plan.draw(7) == plan.draw(7) and plan.draw(7) != plan.draw(8)
  early, late = plan.task_probabilities(0), plan.task_probabilities(999)
  assert early["text_to_image"] == pytest.approx(0.9) and late["text_to_image"] == pytest.approx(0.1)
  assert sum(early.values()) == pytest.approx(1.0)
  draws = [plan.draw(s) for s in range(1, 400)]
  image_steps = np.mean([d.group.tasks == ("text_to_image",) for d in draws[:240]])
  assert image_steps > 0.8
  dropped = np.mean(
    [bool(drop) for d in draws for drop, t in zip(d.drops, d.tasks, strict=True) if t != "video_to_audio"]
  )
  assert dropped == pytest.approx(plan.config.guidance_drop_rate, abs=0.03)


def test_mixture_rejects_bad_weights():
  with pytest.raises(ValueError, match="no task"):
    _mixture(weights={name: 0.0 for name in registry.TASK_NAMES})
  with pytest.raises(KeyError, match="unknown task"):
    _mixture(weights={"text_to_smell": 1.0})


def test_continuation_reads_the_next_caption_or_the_caption_embedding():
  task = registry.get("continuation")
  record = _record(5)
  parts = sequence.parse(task, sequence.build(task, record, VOCAB, LAYOUT).tokens, VOCAB, LAYOUT)
  np.testing.assert_array_equal(parts["next_text"], record["next_text"])
  assert not np.array_equal(record["next_text"], record["text"])
  # A precomputed embedding of the caption stands for every text stream.
  embedded = {k: v for k, v in record.items() if k not in ("text", "next_text")}
  embedded["text_embedding"] = np.zeros((2, 5), np.float32)
  seq = sequence.build(task, embedded, VOCAB, LAYOUT)
  assert list(seq.text_slots[seq.text_slots >= 0]) == [0, 1]


def test_click_weights_cover_each_click_at_every_level_and_end_in_the_sequence():
  """`lm_batches.click_weights`: a bounce's audio frames (`shapes_world.click_windows`, which hold the
  world's own click) weigh `weight` at every level of an audio output, 1 elsewhere and on video outputs;
  `sequence.build` puts them at the output ids (prefix 0, end tokens 1) and refuses a wrong count."""
  from videopoet_jax.data import lm_batches, shapes_world

  frames, bounce, hop = 17, 8, 320  # the world's clip and the demo codec's hop (106 frames of 2.125 s)
  (window,) = shapes_world.click_windows([bounce], 106, frames)
  assert window.start <= shapes_world.click_start(bounce) // hop < window.stop <= window.start + 6
  task, record = registry.get("video_to_audio"), {**_record(3), "attributes": {"bounce_frames": [4]}}
  weights = lm_batches.click_weights(task, record, LAYOUT, 20.0, 9)
  per_level = weights.reshape(LAYOUT.audio_levels, LAYOUT.audio_frames)
  (window,) = shapes_world.click_windows([4], LAYOUT.audio_frames, 9)
  expected = np.ones(LAYOUT.audio_frames, np.float32)
  expected[window] = 20.0
  assert 0 < window.stop - window.start < LAYOUT.audio_frames
  np.testing.assert_array_equal(per_level, np.broadcast_to(expected, per_level.shape))
  assert (lm_batches.click_weights(registry.get("text_to_video"), record, LAYOUT, 20.0, 9) == 1).all()
  assert (lm_batches.click_weights(task, _record(3), LAYOUT, 20.0, 9) == 1).all()  # no bounce
  seq = sequence.build(task, record, VOCAB, LAYOUT, output_weights=weights)
  outputs = seq.loss_weight[seq.loss_mask]
  np.testing.assert_array_equal(outputs[: len(weights)], weights)
  assert (outputs[len(weights) :] == 1).all() and (seq.loss_weight[~seq.loss_mask] == 0).all()
  with pytest.raises(ValueError, match="output weights"):
    sequence.build(task, record, VOCAB, LAYOUT, output_weights=weights[:-1])
