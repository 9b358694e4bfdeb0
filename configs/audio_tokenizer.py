"""SoundStream audio tokenizer: causal SEANet encoder/decoder + residual VQ with EMA codebooks.

Usage:
  python train.py --config=configs/audio_tokenizer.py:demo --workdir=/tmp/at
  python train.py --config=configs/audio_tokenizer.py:tiny --workdir=/tmp/at --config.train.steps=50

Variants:
  tiny   -- seconds per step on CPU; used by the tests (hop 40, 3 levels of 16 codes).
  demo   -- trains on a 2-core CPU in under 20 minutes (1,800 steps of 8 x 0.5 s crops): 16 kHz, hop 320
            (50 frames/s, 106 per 2.125 s clip), 4 levels x 1024 codes (2 kbps, VideoPoet's layout),
            16 channels, no discriminators.
  shapes -- the tokenizer of the procedural world the bundled LM learns: the bundled general tokenizer
            fine-tuned on shapes_world audio only (hums and bounce clicks), 600 steps.
  shapes_decoder -- the bundled model's shapes tokenizer, decoder only, adversarially (its ids unchanged).
            A second leg of 800 steps from its export (`--config.train.init_from=runs/at_shapes_decoder`,
            a fresh discriminator; 43 min) lowered the pitch ceiling on validation seeds from 0.67 to 0.38
            (the discriminator's loss near 1e-5 throughout): not kept.
  shapes_phase -- the bundled model's shapes tokenizer (with that adversarial decoder), decoder only again,
            so that a hum keeps its pitch: with the spectral losses alone the decoder drew every hum at a
            multiple of 100 Hz (its output did not follow the phase the ids carry: SI-SNR -44 dB, pitch
            read back 0.65). Stage 1 (`shapes_phase`, 800 steps) trains it on the waveform L1 alone, which
            makes it phase-coherent (SI-SNR -44 -> +9 dB, pitch 1.00, but clicks, noise bursts, come back
            as silence); stage 2 (`shapes_phase,stage=2`, 600 steps from stage 1's workdir,
            `--config.train.init_from`) adds the mel and STFT losses back beside a 10x waveform weight:
            pitch 1.00 and clicks 1.00 on 60 validation clips. The ids are unchanged (encoder and codebooks
            frozen), so the LM needs no retraining.
  paper  -- VideoPoet parity at SoundStream's width (32 channels, 512-dim embedding) with the waveform
            and STFT discriminators and feature matching: for accelerators.
"""

import ml_collections

from videopoet_jax.config_utils import data_parallel_mesh, parse_arg, tokenizer_train_section


def get_config(arg=None):
  """Returns the audio tokenizer config for `arg` (a variant name plus optional key=value items)."""
  arg = parse_arg(arg, variant="demo", stage=1)
  config = ml_collections.ConfigDict()
  config.trainer = "audio_tokenizer"
  config.variant = arg.variant
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Training crops, in samples at model.sample_rate.
  config.data.clip_samples = 32_000
  # Fraction of crops taken from procedural shapes_world audio; the rest from real recordings.
  config.data.procedural_fraction = 0.2
  # Folders of recordings (wav/flac/ogg/mp3, any rate or channel count; resampled and mixed to mono).
  config.data.audio_dirs = ()
  # Every holdout_every-th file of each folder (sorted by name, starting with the first) is held out.
  config.data.holdout_every = 10
  # Crops are peak-normalized to a level drawn uniformly from this range, in dB below full scale.
  config.data.peak_db_range = (-18.0, -1.0)
  # Crops quieter than this peak (silence) are redrawn, up to a few times.
  config.data.min_peak = 1e-3
  config.data.workers = 1
  # Evaluation round-trips whole files in windows of this many samples (VideoPoet's 2.125 s clip),
  # rounded down to whole latent frames.
  config.data.eval_window_samples = 34_000

  config.model = ml_collections.ConfigDict()
  config.model.sample_rate = 16_000
  # Encoder strides; their product is the hop (samples per latent frame). Decoder uses them reversed.
  config.model.strides = (2, 4, 5, 8)
  # Width of the first encoder block (doubles per stride) and of the last decoder block.
  config.model.channels = 32
  config.model.decoder_channels = 32
  config.model.embedding_dim = 512
  # Residual VQ: levels (quantizers) and codes per level.
  config.model.levels = 4
  config.model.codebook_size = 1024

  config.rvq = ml_collections.ConfigDict()
  config.rvq.ema_decay = 0.99
  # A code whose EMA usage (assignments per step) falls below this is restarted on a batch vector.
  config.rvq.dead_code_threshold = 2.0
  # Dead codes are checked (and restarted) every this many steps, so a restarted code has time to win
  # vectors before it is judged again.
  config.rvq.restart_every = 1
  config.rvq.kmeans_iterations = 10
  # Fraction of examples that use a random number of levels U{1..L} (quantizer dropout); the rest use all.
  config.rvq.dropout_probability = 1.0

  config.loss = ml_collections.ConfigDict()
  config.loss.mel_weight = 1.0
  # Mel windows of the multi-scale reconstruction loss (hop window / 4).
  config.loss.mel_windows = (64, 128, 256, 512, 1024, 2048)
  config.loss.mel_bins = 64
  config.loss.stft_weight = 1.0
  # (window, hop) pairs of the multi-resolution STFT loss.
  config.loss.stft_resolutions = ((512, 128), (1024, 256), (2048, 512))
  config.loss.commitment_weight = 1.0
  # L1 on the waveform (EnCodec's time-domain term; SoundStream has none). Pins the low frequencies and
  # DC that the spectral losses barely see.
  config.loss.waveform_weight = 0.0
  # Adversarial training (0 disables both discriminators entirely) and feature matching.
  config.loss.adversarial_weight = 1.0
  config.loss.feature_weight = 100.0
  config.loss.disc_start_step = 0

  config.disc = ml_collections.ConfigDict()
  # Waveform discriminators (MelGAN): one per scale, on the waveform average-pooled by 2**i.
  config.disc.wave_scales = 3
  config.disc.wave_channels = 16
  config.disc.wave_max_channels = 1024
  # Single STFT discriminator on real and imaginary parts.
  config.disc.stft_window = 1024
  config.disc.stft_hop = 256
  config.disc.stft_channels = 32
  config.disc.stft_channel_multipliers = (1, 2, 4, 4, 8, 8)

  config.train = tokenizer_train_section(
    steps=200_000,
    batch_size=64,
    learning_rate=1e-4,
    warmup_steps=1000,
    b1=0.5,
    b2=0.9,
    disc_lr_scale=1.0,
    grad_clip=1.0,
    ema_decay=0.999,
    log_every=50,
    checkpoint_every=1000,
    keep_checkpoints=3,
    init_from="",
    trainable="all",
    max_nonfinite_steps=10,
  )

  # The tokenizers are data parallel: every device on the data axis.
  config.mesh = data_parallel_mesh()

  if arg.variant == "paper":
    pass
  elif arg.variant in ("demo", "shapes", "shapes_decoder", "shapes_phase"):
    config.data.clip_samples = 8_000
    config.data.audio_dirs = ("media/audio/instruments", "media/audio/speech")
    config.data.workers = 2
    config.model.channels = 16
    config.model.decoder_channels = 16
    config.model.embedding_dim = 64
    # 8 x 25 = 200 frames per step share 1024 codes (0.2 uses per code per step on average).
    config.rvq.dead_code_threshold = 0.015
    config.rvq.restart_every = 25
    config.rvq.dropout_probability = 0.3
    config.loss.waveform_weight = 100.0
    config.loss.adversarial_weight = 0.0
    config.train.steps = 1800
    config.train.batch_size = 8
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 50
    config.train.b1 = 0.9
    config.train.b2 = 0.99
    config.train.ema_decay = 0.98
    config.train.log_every = 25
    config.train.checkpoint_every = 100
    if arg.variant in ("shapes", "shapes_decoder", "shapes_phase"):
      # The bundled general tokenizer fine-tuned on shapes_world audio only: trained from scratch on it
      # (4 x 256 codes, 1,200 steps), hums kept their pitch 0.75 of the time and no click came back.
      config.data.procedural_fraction = 1.0
      config.data.audio_dirs = ()
      config.train.init_from = "videopoet_jax/assets/audio_tokenizer"
      config.train.learning_rate = 5e-4
      config.train.warmup_steps = 20
      config.train.steps = 600
    if arg.variant in ("shapes_decoder", "shapes_phase"):
      # The bundled model's world audio tokenizer with its decoder retrained, encoder and codebooks frozen:
      # its ids, which tell the six hums apart (nearest centroid of level-0 id counts: 1.00), stay the LM's.
      config.train.init_from = "videopoet_jax/assets/lm/audio_tokenizer"
      config.train.trainable = "decoder"
      config.rvq.dropout_probability = 0.0
    if arg.variant == "shapes_decoder":
      # Adversarially (waveform and STFT discriminators, feature matching), so that pitch may come back.
      config.loss.adversarial_weight = 1.0
    if arg.variant == "shapes_phase":
      if arg.stage == 1:
        config.loss.mel_weight = 0.0
        config.loss.stft_weight = 0.0
        config.train.steps = 800
      elif arg.stage == 2:
        config.loss.waveform_weight = 1000.0
        config.train.steps = 600
      else:
        raise ValueError(f"stage={arg.stage}: shapes_phase has stages 1 and 2")
  elif arg.variant == "tiny":
    config.data.clip_samples = 1_600
    config.data.procedural_fraction = 1.0
    config.model.strides = (2, 4, 5)
    config.model.channels = 4
    config.model.decoder_channels = 4
    config.model.embedding_dim = 8
    config.model.levels = 3
    config.model.codebook_size = 16
    config.rvq.dead_code_threshold = 0.05
    config.rvq.dropout_probability = 0.5
    config.loss.mel_windows = (64, 128, 256)
    config.loss.mel_bins = 32
    config.loss.stft_resolutions = ((128, 32), (256, 64))
    config.loss.adversarial_weight = 0.0
    config.disc.wave_scales = 2
    config.disc.wave_channels = 4
    config.disc.wave_max_channels = 16
    config.disc.stft_window = 128
    config.disc.stft_hop = 32
    config.disc.stft_channels = 4
    config.disc.stft_channel_multipliers = (1, 2)
    config.train.steps = 20
    config.train.batch_size = 8
    config.train.learning_rate = 3e-3
    config.train.warmup_steps = 5
    config.train.b1 = 0.9
    config.train.b2 = 0.99
    config.train.ema_decay = 0.9
    config.train.log_every = 5
    config.train.checkpoint_every = 10
  else:
    raise ValueError(
      f"unknown audio tokenizer variant {arg.variant!r}: "
      "tiny | demo | shapes | shapes_decoder | shapes_phase | paper"
    )
  if arg.stage != 1 and arg.variant != "shapes_phase":
    raise ValueError(f"stage={arg.stage} is only for the shapes_phase variant")
  return config
