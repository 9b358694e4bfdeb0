import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soundfile
from flax import nnx

from videopoet_jax.data import media
from videopoet_jax.eval import audio_metrics
from videopoet_jax.tokenizers import spectral
from videopoet_jax.tokenizers.audio import AudioGeometry, AudioTokenizer

from conftest import load_config


@pytest.fixture
def tokenizer(tiny_audio_config):
  return AudioTokenizer(tiny_audio_config.model, rngs=nnx.Rngs(0))


def test_videopoet_stride_arithmetic():
  geometry = AudioGeometry.from_config(load_config("audio_tokenizer", "demo").model)
  assert geometry.hop == 320 and geometry.frame_rate == 50.0
  assert geometry.frames(34_000) == 106  # VideoPoet: 106 frames per 2.125 s clip
  assert geometry.samples(106) == 33_920
  assert geometry.kbps() == pytest.approx(4 * 10 * 50 / 1000)


def test_encode_decode_shapes(tokenizer):
  geometry = tokenizer.geometry
  wave = jax.random.uniform(jax.random.key(0), (2, 5 * geometry.hop + 7), minval=-1, maxval=1)
  ids = tokenizer.encode(wave)
  assert ids.shape == (2, geometry.levels, 5) and ids.dtype == jnp.int32
  assert int(ids.min()) >= 0 and int(ids.max()) < geometry.codebook_size
  out = tokenizer.decode(ids)
  assert out.shape == (2, 5 * geometry.hop) and float(jnp.abs(out).max()) <= 1.0
  assert tokenizer.decode(ids[:, :1]).shape == out.shape  # fewer levels, same length


def test_bad_inputs_raise(tokenizer):
  with pytest.raises(ValueError, match="mono"):
    tokenizer.encode(jnp.zeros((1, 2, 400)))
  with pytest.raises(ValueError, match="shorter than one frame"):
    tokenizer.encode(jnp.zeros((1, tokenizer.geometry.hop - 1)))
  with pytest.raises(ValueError, match="levels"):
    tokenizer.decode(jnp.zeros((1, tokenizer.geometry.levels + 1, 3), jnp.int32))


def test_encoder_is_causal(tokenizer):
  hop = tokenizer.geometry.hop
  wave = jax.random.uniform(jax.random.key(1), (1, 8 * hop), minval=-1, maxval=1)
  changed = wave.at[:, 5 * hop :].set(jax.random.uniform(jax.random.key(2), (1, 3 * hop)))
  a, b = tokenizer.encode_latents(wave), tokenizer.encode_latents(changed)
  np.testing.assert_array_equal(a[:, :5], b[:, :5])  # frames before the change see none of it
  assert not np.allclose(a[:, 5], b[:, 5])  # the frame holding the change does


def test_decoder_is_causal(tokenizer):
  z = jax.random.normal(jax.random.key(3), (1, 6, tokenizer.encoder.embed.conv.out_features))
  a = tokenizer.decode_latents(z)
  b = tokenizer.decode_latents(z.at[:, 4:].add(1.0))
  hop = tokenizer.geometry.hop
  np.testing.assert_array_equal(a[:, : 4 * hop], b[:, : 4 * hop])
  assert not np.allclose(a[:, 4 * hop :], b[:, 4 * hop :])


def test_stft_and_mel_match_librosa():
  wave = np.random.default_rng(0).uniform(-1, 1, 4000).astype(np.float32)
  ours = np.asarray(spectral.stft_magnitude(jnp.asarray(wave[None]), 256, 64))[0]
  reference = np.abs(librosa.stft(wave, n_fft=256, hop_length=64, window="hann", pad_mode="reflect")).T
  np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-3)
  mel = np.asarray(spectral.mel_spectrogram(jnp.asarray(wave[None]), 16000, 1024, 64))[0]
  reference = librosa.feature.melspectrogram(
    y=wave, sr=16000, n_fft=1024, hop_length=256, power=1.0, n_mels=64, pad_mode="reflect"
  ).T
  np.testing.assert_allclose(mel, reference, rtol=1e-3, atol=1e-3)


def test_metrics_order_degradations():
  rng = np.random.default_rng(1)
  t = np.arange(16000) / 16000
  wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(16000)).astype(np.float32)
  noisy = wave + 0.05 * rng.standard_normal(16000).astype(np.float32)
  assert audio_metrics.log_mel_distance(wave[None], wave[None], 16000)[0] == pytest.approx(0, abs=1e-6)
  d_noisy = audio_metrics.log_mel_distance(wave[None], noisy[None], 16000)[0]
  d_band = audio_metrics.log_mel_distance(wave[None], audio_metrics.bandlimit(wave, 16000)[None], 16000)[0]
  assert 0 < d_noisy < d_band  # losing everything above 1 kHz is worse than mild noise
  assert audio_metrics.si_snr(wave[None], 2 * wave[None])[0] > 60  # scale-invariant
  assert 0 < audio_metrics.si_snr(wave[None], noisy[None])[0] < 20


def test_round_trip_covers_the_whole_wave():
  wave = np.arange(1000, dtype=np.float32)
  out = audio_metrics.round_trip(lambda x: x * 2, wave, window=300, batch_size=2)
  np.testing.assert_array_equal(out, 2 * wave)


def test_read_audio_resamples_and_mixes_to_mono(tmp_path):
  t = np.arange(22050) / 22050
  stereo = np.stack([0.5 * np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 300 * t)], axis=1)
  soundfile.write(tmp_path / "a.flac", stereo, 22050)
  wave = media.read_audio(str(tmp_path / "a.flac"), 16000)
  assert wave.shape == (16000,) and wave.dtype == np.float32
  assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)
  (tmp_path / "bad.wav").write_bytes(b"not audio at all")
  with pytest.raises(media.MediaError, match="bad.wav"):
    media.read_audio(str(tmp_path / "bad.wav"), 16000)


def test_bundled_audio_tokenizer_round_trips_procedural_audio():
  from videopoet_jax.data import shapes_world
  from videopoet_jax.tokenizers import pretrained

  tokenizer, config = pretrained.load_audio_tokenizer()
  assert tokenizer.geometry.frames(shapes_world.AUDIO_SAMPLES) == 106
  evaluate = audio_metrics.CodecEvaluator(tokenizer, config, levels=tokenizer.geometry.levels, batch_size=2)
  distances = [evaluate(shapes_world.render(seed)["audio"])["mel_distance"] for seed in range(10_001, 10_005)]
  # Measured: 0.76-1.01 for the bundled weights, 7.7-8.0 for an untrained model of the same shape.
  assert np.mean(distances) < 1.5 and max(distances) < 2.0, distances
