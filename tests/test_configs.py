import glob
import itertools
import os

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import REPO

CONFIG_VARIANTS = {
  "video_tokenizer": ["tiny", "demo", "faithful64", "paper"],
  "audio_tokenizer": ["tiny", "demo", "paper"],
  "lm": ["tiny", "demo", "300m", "1b", "8b"],
  "sr": ["tiny", "demo", "paper"],
}


def _parse(argv):
  """Parses argv with a fresh FlagValues holding train.py's --config definition."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "config", flag_values=values, lock_config=True, sys_argv=["prog", *argv]
  )
  values(["prog", *argv])
  return values.config


def test_every_config_file_is_covered():
  files = {os.path.basename(p)[:-3] for p in glob.glob(str(REPO / "configs" / "*.py"))}
  assert files - {"__init__"} == set(CONFIG_VARIANTS)


@pytest.mark.parametrize("name, variant", [(n, v) for n, vs in CONFIG_VARIANTS.items() for v in vs])
def test_configs_load_lock_and_override(name, variant):
  path = str(REPO / "configs" / f"{name}.py")
  config = _parse([f"--config={path}:{variant}", "--config.train.steps=7"])
  assert config.trainer == name and config.variant == variant
  assert config.train.steps == 7
  with pytest.raises(AttributeError):
    config.new_field = 1  # locked: typos cannot add keys
  with pytest.raises(TypeError):
    config.train.steps = "many"


def test_override_of_unknown_key_fails():
  with pytest.raises((flags.IllegalFlagValueError, AttributeError), match="widht"):
    _parse([f"--config={REPO / 'configs' / 'video_tokenizer.py'}:tiny", "--config.model.widht=64"])


def test_unknown_variant_fails():
  from conftest import load_config

  with pytest.raises(ValueError, match="unknown video tokenizer variant"):
    load_config("video_tokenizer", "huge")


def test_how_a_model_computes_is_not_its_architecture():
  """A model trained with one loss chunk, remat or compute dtype continues under another; a width does not."""
  from videopoet_jax import config_utils

  saved = config_utils.to_json_dict(_parse(["--config=configs/lm.py:demo"]))
  phase2 = config_utils.to_json_dict(
    _parse(
      ["--config=configs/lm.py:demo,phase=2", "--config.model.logits_chunk=64", "--config.model.remat=full"]
    )
  )
  assert config_utils.architecture_diff(saved, phase2) == []
  wider = config_utils.to_json_dict(_parse(["--config=configs/lm.py:demo", "--config.model.width=256"]))
  assert config_utils.architecture_diff(saved, wider) == ["model.width: 192 -> 256"]


def test_the_table_lm_phases_continue_each_other_without_restarting_its_video_rows():
  """Phases 2 to 4 warm-start from the phase before on the same shards and architecture (phase 4 adds video
  positions, which a warm start may add), each at a lower peak rate; the content init of the video
  embeddings would overwrite what phase 1 learned, so only phase 1 has it."""
  from videopoet_jax import config_utils
  from videopoet_jax.model.transformer import VIDEO_POSITION_KEYS

  phases = [_parse([f"--config=configs/lm.py:demo,ids=table,phase={p}"]) for p in (1, 2, 3, 4)]
  for earlier, later in itertools.pairwise(phases):
    assert earlier.data.tokens_dir == later.data.tokens_dir == "tokens/table_turns_20k"
    saved, continued = config_utils.to_json_dict(earlier), config_utils.to_json_dict(later)
    assert config_utils.architecture_diff(saved, continued, VIDEO_POSITION_KEYS) == []
    assert later.train.learning_rate < earlier.train.learning_rate
    assert later.train.video_embedding_init == ""
  assert phases[0].train.video_embedding_init == "content"
  grid = tuple(phases[3].layout.latent_shape[1:])
  assert [p.model.video_grid for p in phases] == [(), (), (), grid]
  # Phase 3 gives text_to_video a larger share of the steps than phase 2 did; phase 4 keeps phase 3's, in one
  # cosine cycle twice as long (it replaced two runs: 1,500 steps, then a warm restart of 2,000).
  share = [p.mixture.weights.text_to_video / sum(p.mixture.weights.values()) for p in phases[1:]]
  assert share[1] > share[0] and share[2] == share[1]
  assert phases[3].train.steps == 2 * phases[2].train.steps
  for ids, phase in (("table", 5), ("world", 5)):
    with pytest.raises(flags.IllegalFlagValueError, match="phases 1 to 4"):
      _parse([f"--config=configs/lm.py:demo,ids={ids},phase={phase}"])


def test_the_world_audio_decoder_trains_phase_first_then_the_spectrum():
  """configs/audio_tokenizer.py:shapes_phase: stage 1 on the waveform alone (the decoder learns the hums'
  phase), stage 2 with the spectral losses back (the clicks); both decoder-only, so the LM's ids stay."""
  path = str(REPO / "configs" / "audio_tokenizer.py")
  first = _parse([f"--config={path}:shapes_phase"])
  second = _parse([f"--config={path}:shapes_phase,stage=2"])
  assert first.train.trainable == second.train.trainable == "decoder"
  assert first.loss.mel_weight == first.loss.stft_weight == 0 and first.loss.waveform_weight > 0
  assert second.loss.mel_weight > 0 and second.loss.stft_weight > 0
  assert second.loss.waveform_weight > first.loss.waveform_weight
  assert first.loss.adversarial_weight == second.loss.adversarial_weight == 0
  for bad in ("shapes_phase,stage=3", "demo,stage=2"):
    with pytest.raises(Exception, match="stage"):
      _parse([f"--config={path}:{bad}"])
