"""MAGVIT-v2 video tokenizer: causal 3D CNN + lookup-free quantization.

Usage:
  python train.py --config=configs/video_tokenizer.py:demo --workdir=/tmp/vt
  python train.py --config=configs/video_tokenizer.py:tiny --workdir=/tmp/vt --config.train.steps=50

Variants:
  tiny   -- seconds per step on CPU; used by the tests.
  demo   -- trains on a 2-core CPU in under an hour (9,000 steps, 50 min): 64x64, 17 frames at 8 fps
            -> 5x8x8 ids of 14 bits.
            A cheaper shape of the same design: 4x4 space-to-depth stem, factorized (2+1)D causal convs,
            early temporal downsampling, one residual block per resolution, decoder norms that also see the
            previous latent frame's codes.
  shapes -- the tokenizer of the procedural world the bundled LM learns: the bundled general tokenizer
            fine-tuned on shapes_world only, 1,500 steps.
  world  -- a tokenizer made for that world, from scratch on shapes_world: every conv at the 8x8 id grid,
            the encoder one patch per id (a flat background gets one id wherever it is).
  world_sharp -- an experiment, not shipped: the bundled LM's world tokenizer with its decoder fine-tuned
            adversarially (encoder frozen: every id, so the LM, stays valid), for edges sharp enough to
            tell the shapes apart. 300 steps (2.6 s each) left the shapes as blurred as before and the
            discriminator near chance; an L1-only decoder run (400 steps) left the shape ceiling at 0.34.
  world_table -- the bundled model's video tokenizer: each id a row of a table of the world's
            most frequent patches (no neural network), built from 3,000 training clips.
  world128 -- the super-resolution stage's high-resolution tokenizer: the same kind of table, of
            shapes_world rendered at 128 pixels (17x128x128 -> 5x16x16 ids), from 1,500 clips.
  world_edges -- an experiment, not shipped: the bundled LM's world tokenizer fine-tuned whole (every id
            changes) with an edge loss and an MLP per output patch, to give outlines ids of their own.
            Stopped at step 1,000 of 3,000 (0.78 s a step) with no sign of it (`bench/id_table.py
            --num_train=1000`: 216 distinct first-frame ids against the bundled one's 201; shape read from
            its decoder 0.30, from the id table 0.40, against 0.35 / 0.44; 200 validation clips).
  faithful64 -- the paper's layer pattern at 64x64 with 32 base channels (full 3x3x3 convs at full
                resolution; ~50 s/step at batch 8 on that CPU), for accelerators.
  paper  -- MAGVIT-v2 as in the paper (17x128x128 -> 5x16x16, 18 bits, 128 base channels, mults 1,2,2,4,
            4 res blocks, 3D discriminator, LeCAM): for accelerators.
"""

import ml_collections

from videopoet_jax.config_utils import data_parallel_mesh, parse_arg, tokenizer_train_section


def get_config(arg=None):
  """Returns the video tokenizer config for `arg` (a variant name plus optional key=value items)."""
  arg = parse_arg(arg, variant="demo")
  config = ml_collections.ConfigDict()
  # Which trainer train.py dispatches to.
  config.trainer = "video_tokenizer"
  config.variant = arg.variant
  config.seed = 0

  # Clip format: frames = 1 + 4k (causal), pixels in [-1, 1].
  config.data = ml_collections.ConfigDict()
  config.data.frames = 17
  config.data.fps = 8
  config.data.size = 64
  # Training mixture: fractions of procedural shapes_world clips and of camera moves over photos; the
  # rest is cut from real videos.
  config.data.procedural_fraction = 0.3
  config.data.photo_fraction = 0.0
  # Folder of real videos (mp4/avi/...) to cut clips from.
  config.data.video_dir = ""
  # Folder of photos (jpg/png) for camera-move clips.
  config.data.photo_dir = ""
  # Files (by name) never used for training, kept for the held-out check.
  config.data.holdout = ("Megamind.avi", "Megamind_bugy.avi")
  # Worker threads preparing batches.
  config.data.workers = 1
  # Clips a patch table is built from (model.kind="patch_table").
  config.data.num_clips = 0

  config.model = ml_collections.ConfigDict()
  # "magvit": the causal CNN and LFQ (every variant but world_table); "patch_table": each id a row of a
  # table of the world's patches (videopoet_jax/tokenizers/patch_table.py), built from data.num_clips clips.
  config.model.kind = "magvit"
  # Space-to-depth factor applied to pixels before the first conv (1 = paper).
  config.model.patch_size = 1
  # Channels of the first resolution; later resolutions multiply it.
  config.model.base_channels = 128
  config.model.channel_multipliers = (1, 2, 2, 4)
  # Residual blocks per resolution in the encoder and in the decoder.
  config.model.num_res_blocks = 4
  # Which down stages (all but the last resolution) halve space; which halve time.
  config.model.spatial_downsample = (True, True, True)
  config.model.temporal_downsample = (False, True, True)
  # True: (1,3,3) spatial then (3,1,1) causal temporal conv; False: full 3x3x3 causal conv.
  config.model.factorized_conv = False
  # Decoder upsampling conv emits the next (narrower) level's width instead of its own (cheaper).
  config.model.narrow_upsample = False
  # Decoder norms also see the previous latent frame's codes (causal), not only the current one's.
  config.model.decoder_previous_codes = False
  # Decoder output: 0 = one conv writes each patch_size^2 patch of pixels; N = that conv writes N hidden
  # channels and a per-position layer the patch (an MLP per patch).
  config.model.decoder_patch_hidden = 0
  # GroupNorm groups (clipped to divide the channel count).
  config.model.norm_groups = 32
  # "zeros" or "edge" (replicate the border) spatial padding; "group" (per-frame GroupNorm) or "channel"
  # (per-position) norms. edge + channel make the model spatially local: a flat region gets one code.
  config.model.spatial_padding = "zeros"
  config.model.norm = "group"
  # Spatial kernel of the encoder's convs (3 = paper). 1: each id sees only its own patch (and its past),
  # so a flat region gets one id however near an object is.
  config.model.encoder_spatial_kernel = 3
  # Bits per token: the codebook has 2**code_bits entries.
  config.model.code_bits = 18
  # Bits per entropy sub-group: the entropy costs code_bits/group * 2**group instead of 2**code_bits.
  config.model.entropy_group_bits = 9

  config.loss = ml_collections.ConfigDict()
  config.loss.l1_weight = 0.0
  config.loss.l2_weight = 5.0
  # L1 on the pixels' horizontal and vertical differences (edges; zero on flat regions).
  config.loss.edge_weight = 0.0
  config.loss.commitment_weight = 0.25
  config.loss.entropy_weight = 0.1
  # Entropy weight starts at entropy_weight * entropy_boost and decays linearly to 1x.
  config.loss.entropy_boost = 3.0
  config.loss.entropy_boost_steps = 2000
  # Inverse temperature of the soft code assignment used by the entropy penalty.
  config.loss.entropy_inv_temperature = 100.0
  # Adversarial training (0 disables the discriminator entirely).
  config.loss.adversarial_weight = 0.1
  config.loss.gan_loss = "non_saturating"  # or "hinge"
  config.loss.disc_start_step = 0
  config.loss.r1_weight = 10.0
  config.loss.r1_every = 20
  config.loss.lecam_weight = 0.001
  config.loss.lecam_decay = 0.999

  config.disc = ml_collections.ConfigDict()
  config.disc.base_channels = 128
  config.disc.channel_multipliers = (2, 4, 4, 4, 4)
  # Pixels stacked into channels (p x p) before the first conv; 1 = paper.
  config.disc.patch_size = 1

  config.train = tokenizer_train_section(
    steps=100_000,
    batch_size=256,
    learning_rate=1e-4,
    warmup_steps=500,
    b1=0.0,
    b2=0.99,
    disc_lr_scale=0.8,
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
    config.data.size = 128
  elif arg.variant == "faithful64":
    config.model.base_channels = 32
    config.model.channel_multipliers = (1, 2, 2, 4)
    config.model.num_res_blocks = 2
    config.model.code_bits = 12
    config.model.entropy_group_bits = 6
    config.train.batch_size = 8
  elif arg.variant in ("demo", "shapes", "world", "world_sharp", "world_edges", "world128", "world_table"):
    config.model.patch_size = 4
    config.model.base_channels = 32
    config.model.channel_multipliers = (1, 2, 4)
    config.model.num_res_blocks = 1
    config.model.spatial_downsample = (True, False)
    config.model.temporal_downsample = (True, True)
    config.model.factorized_conv = True
    config.model.narrow_upsample = True
    config.model.decoder_previous_codes = True
    config.model.norm_groups = 16
    config.model.code_bits = 14
    config.model.entropy_group_bits = 7
    # PSNR is what the demo is judged on: mostly L2.
    config.loss.l2_weight = 4.0
    config.loss.l1_weight = 0.25
    config.loss.adversarial_weight = 0.0
    config.loss.entropy_boost_steps = 500
    config.train.steps = 9000
    config.train.batch_size = 4
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 100
    config.train.b1 = 0.9
    config.train.ema_decay = 0.99
    config.train.log_every = 25
    config.train.checkpoint_every = 500
    config.data.workers = 2
    config.data.procedural_fraction = 0.1
    config.data.photo_fraction = 0.45
    # ../shared/scripts/fetch_real_media.sh media + scripts/fetch_videos.sh media/video, and
    # scripts/fetch_photos.sh media/photos.
    config.data.video_dir = "media/video"
    config.data.photo_dir = "media/photos"
    if arg.variant == "shapes":
      # The bundled general tokenizer fine-tuned on shapes_world only (from scratch, a 10-bit run was
      # still drawing gray blobs after 800 steps): its architecture, no entropy boost, a lower rate.
      config.data.procedural_fraction = 1.0
      config.data.photo_fraction = 0.0
      config.data.video_dir = config.data.photo_dir = ""
      config.model.decoder_previous_codes = False
      config.loss.entropy_boost = 1.0
      config.train.init_from = "videopoet_jax/assets/video_tokenizer"
      config.train.learning_rate = 5e-4
      config.train.steps = 1500
    elif arg.variant in ("world", "world_sharp", "world_edges", "world128", "world_table"):
      # A tokenizer made for the procedural world, trained from scratch on shapes_world only: every conv at
      # the 8x8 id grid (8x8 space-to-depth stem, time halved twice); the encoder sees one patch per id
      # (per-position norms, spatial kernel 1), so a flat background gets one id wherever it is.
      config.data.procedural_fraction = 1.0
      config.data.photo_fraction = 0.0
      config.data.video_dir = config.data.photo_dir = ""
      config.model.patch_size = 8
      config.model.base_channels = 48
      config.model.channel_multipliers = (1, 2, 2)
      config.model.spatial_downsample = (False, False)
      config.model.spatial_padding = "edge"
      config.model.norm = "channel"
      config.model.encoder_spatial_kernel = 1
      config.model.decoder_previous_codes = False
      config.loss.entropy_boost = 1.0
      config.train.batch_size = 8
      # The bundled one was trained 7,626 steps in three legs (its model card); one cosine run of this
      # length is the rebuild's (about 0.6 s a step here).
      config.train.steps = 7600
      config.train.checkpoint_every = 250
      if arg.variant == "world_sharp":
        # The ids hold the shape (bench/id_probe.py reads it from them in 0.87 of validation clips) but
        # an L2-trained decoder blurs it away (the pixels' shape ceiling is 0.34): L1 (a median, not a
        # mean, at an uncertain edge) and a small 3D discriminator make the decoder commit to an edge.
        config.train.init_from = "videopoet_jax/assets/lm/video_tokenizer"
        config.train.trainable = "decoder"
        config.train.steps = 1000
        config.train.learning_rate = 3e-4
        config.train.warmup_steps = 50
        config.train.b1 = 0.5
        config.loss.l2_weight = 1.0
        config.loss.l1_weight = 1.0
        config.loss.adversarial_weight = 0.1
        config.loss.disc_start_step = 0
        # 4x4 pixels per position: the discriminator costs less than the decoder (one of 16 channels at
        # full resolution, with the old depthwise blur pool, had not made 25 steps in 10 minutes here).
        config.disc.patch_size = 4
        config.disc.base_channels = 32
        config.disc.channel_multipliers = (2, 4)
      if arg.variant == "world_edges":
        # The bundled world tokenizer's encoder gives the first frames of 3,000 training clips 254
        # distinct ids: too few to say where an outline runs in a patch, so no decoder draws the shapes
        # (`bench/id_table.py`: a table of each id's mean patch reads shape on 0.47 of first frames, the
        # decoder 0.35; decoder-only runs, with a per-frame 2x-upsampling head or L1 or a GAN, stayed at
        # 0.34). Encoder and decoder fine-tuned together, with an edge term (outlines cost as much as
        # the background) and an MLP per output patch (which can place an edge anywhere in its patch);
        # every id changes, so a new LM would follow. Stopped at step 1,000 with no sign of it (header).
        config.model.decoder_patch_hidden = 256
        config.train.init_from = "videopoet_jax/assets/lm/video_tokenizer"
        config.train.steps = 3000
        config.train.learning_rate = 5e-4
        config.train.warmup_steps = 50
        config.loss.edge_weight = 1.0
      if arg.variant == "world_table":
        # The next bundled model's world tokenizer: the same id format (5x8x8 ids of 14 bits), each id a
        # row of a table of the world's most frequent patches (first frame: 8x8 pixels; later latent
        # frames: 4 frames of 8x8), so that the ids place every outline (README, "What drawing the shapes
        # needs"). Built from 3,000 training clips in 15 s; no gradient training.
        config.model.kind = "patch_table"
        config.data.num_clips = 3000
      if arg.variant == "world128":
        # The super-resolution stage's high-resolution tokenizer (configs/sr.py:demo), built as the
        # bundled model's world tokenizer is: a patch table, here of shapes_world rendered at 128 pixels
        # (17x128x128 -> 5x16x16 ids of 14 bits, each an 8x8 patch), so the stage's ids keep the render's
        # sharp outlines. (A CNN fine-tuned at 128 pixels, this variant before, drew them at a quarter of
        # the render's edge sharpness: README "Super-resolution".)
        config.model.kind = "patch_table"
        config.data.size = 128
        config.data.num_clips = 1500
  elif arg.variant == "tiny":
    config.data.frames = 5
    config.data.size = 16
    config.data.procedural_fraction = 1.0
    config.model.patch_size = 2
    config.model.base_channels = 8
    config.model.channel_multipliers = (1, 2, 2)
    config.model.num_res_blocks = 1
    config.model.spatial_downsample = (True, True)
    config.model.temporal_downsample = (True, True)
    config.model.factorized_conv = False
    config.model.norm_groups = 4
    config.model.code_bits = 8
    config.model.entropy_group_bits = 4
    config.loss.adversarial_weight = 0.0
    config.disc.base_channels = 8
    config.disc.channel_multipliers = (2, 2)
    config.train.steps = 20
    config.train.batch_size = 8
    config.train.learning_rate = 3e-3
    config.train.warmup_steps = 5
    config.train.b1 = 0.9
    config.train.ema_decay = 0.9
    config.train.log_every = 5
    config.train.checkpoint_every = 10
  else:
    raise ValueError(
      f"unknown video tokenizer variant {arg.variant!r}: "
      "tiny | demo | shapes | world | world_sharp | world_edges | world_table | world128 | faithful64 | paper"
    )
  return config
