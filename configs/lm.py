"""The multimodal prefix LM (stage 2), trained on token shards written by tokenizers/encode.py.

Usage:
  python tokenizers/encode.py --dataset=shapes_world --audio_tokenizer=videopoet_jax/assets/audio_tokenizer \
      --out=tokens/shapes_world
  python train.py --config=configs/lm.py:demo --workdir=runs/lm_demo
  python train.py --config=configs/lm.py:demo --workdir=runs/lm --config.data.tokens_dir=tokens/mine

Variants:
  tiny   -- the tests: a few seconds per step on CPU, synthetic token shards.
  demo   -- the bundled model, trained on this 2-core CPU: shapes_world (20,000 clips) tokenized by the
            world's own tokenizers (configs/video_tokenizer.py:world, 5x8x8 ids of 14 bits;
            configs/audio_tokenizer.py:shapes, 4 x 106 ids of 10 bits), every task. `demo,phase=2`
            continues a model (`--config.train.init_from=` its workdir) on the tasks learned slowest: the
            prompted video tasks get most of the steps; `demo,phase=3` continues that on
            compositional_turns (tokens/world_turns_20k: clips that turn after their first second), so
            that extension follows a new prompt; `demo,phase=4` continues that on clips that all turn
            (tokens/world_all_turns_6k), continuation weighted most. `demo,ids=table`: compositional_turns
            tokenized by the world's patch table (configs/video_tokenizer.py:world_table,
            tokens/table_turns_20k), the video ids' embeddings started from their patches' pixels;
            `demo,ids=table,phase=2` continues it with phase 2's weights, `demo,ids=table,phase=3` continues
            that at a lower rate, text_to_video weighted up; `phase=4` continues that for 3,000 steps (the
            bundled model: scripts/build_bundled_model.sh).
  300m, 1b, 8b -- VideoPoet's sizes at its token format (5x16x16 ids of 18 bits, 4 x 106 audio ids, T5-XL
            text embeddings projected into the prefix), bf16, FSDP, for accelerators. The parameter
            counts name the transformer body; the 300k-entry embedding and output matrices add
            2 x 300k x width on top.

Hardware: `topology=<name>` sets the mesh, the fused attention kernel and (where the per-chip memory needs
them) the microbatches of a size for a TPU slice or GPU cluster, at VideoPoet's global batch of 1024, e.g.
`--config=configs/lm.py:8b,topology=v5p-256` (README "Scale-out").

The vocabulary size is derived from the `vocab` section and the task registry; the trainer checks the
`vocab` and `layout` sections against the token shards' manifest.
"""

import ml_collections

from videopoet_jax import tasks
from videopoet_jax.config_utils import parse_arg

# Mixture weights of the demo and accelerator variants (every task; the tiny variant uses the same).
TASK_WEIGHTS = {
  "unconditional_video": 0.5,
  "text_to_video": 2.0,
  "text_to_image": 1.0,
  "image_to_video": 1.0,
  "continuation": 1.0,
  "inpaint": 1.0,
  "outpaint": 1.0,
  "stylize": 1.0,
  "video_to_audio": 1.0,
  "audio_to_video": 0.5,
  "bridge": 0.5,
  "backward": 0.5,
}

# Logical axis -> mesh axes. Parameters: "embed" over fsdp, the wide dims over tensor. Activations: batch
# over (data, fsdp), the residual stream replicated over tensor, logits split over tensor by vocabulary.
SHARDING_RULES = (
  ("activation_batch", ("data", "fsdp")),
  ("activation_length", None),
  ("activation_embed", None),
  ("activation_vocab", "tensor"),
  ("vocab", "tensor"),
  ("embed", "fsdp"),
  ("text_embed", None),
  ("heads", "tensor"),
  ("mlp", "tensor"),
)

# (width, depth, heads, head_dim, mlp_dim) of each size.
SIZES = {
  "tiny": (32, 2, 2, 16, 64),
  "demo": (192, 4, 3, 64, 512),
  "300m": (1024, 24, 16, 64, 2816),
  "1b": (2048, 24, 16, 128, 5632),
  "8b": (4096, 32, 32, 128, 14336),
}


# Hardware a size is laid out for: name -> (chips, HBM bytes per chip). v5p-N / v5e-N count TensorCores as
# Cloud TPU names them (v5p: 2 per chip, 95 GB HBM; v5e: 1 per chip, 16 GB); h100xN: N H100 SXM 80 GB GPUs
# in hosts of 8.
TOPOLOGIES = {
  "v5p-64": (32, 95 * 10**9),
  "v5p-256": (128, 95 * 10**9),
  "v5e-256": (256, 16 * 10**9),
  "h100x8": (8, 80 * 10**9),
  "h100x64": (64, 80 * 10**9),
}
# Full-sequence attention by the topology's name prefix (model.attention): fused kernels, no S x S tensor.
TOPOLOGY_ATTENTION = {"v5p": "splash", "v5e": "splash", "h100": "cudnn"}
# (size, topology) -> ((data, fsdp, tensor) mesh, microbatches). Every preset trains at VideoPoet's global
# batch of 1024 sequences (the longest length group's rows), FSDP over every chip: a tensor axis would shrink
# the per-chip state, already small, but replicate the residual stream over it and multiply the rows per
# chip. Where one pass of a chip's rows would not fit, gradient accumulation runs them in microbatches.
#
# Per-chip memory, GiB (videopoet_jax/memory.py: state exact from the shardings, activations analytic with
# remat "full", bf16 compute and the fused attention; the dense attention term was calibrated on XLA's TPU
# memory analysis of the 300m step on v5p-64, which at batch 1024 with dense attention needed 88.6 GiB per
# chip, more than the 88.5 GiB HBM; tests/test_memory.py checks every line against the estimate):
#   size  topology  mesh         batch  micro  attention  params  moments  grads  ema   acts  total  HBM
#   300m  v5p-64    (1, 32, 1)   1024   1      splash     0.10    0.20    0.10    0.10    73.67 74.16 88.48
#   300m  v5p-256   (1, 128, 1)  1024   1      splash     0.02    0.05    0.02    0.02    18.20 18.33 88.48
#   300m  v5e-256   (1, 256, 1)  1024   1      splash     0.01    0.02    0.01    0.01    9.10 9.16 14.90
#   300m  h100x8    (1, 8, 1)    1024   4      cudnn      0.40    0.80    0.80    0.40    33.53 35.93 74.51
#   300m  h100x64   (1, 64, 1)   1024   1      cudnn      0.05    0.10    0.05    0.05    16.70 16.95 74.51
#   1b    v5p-64    (1, 32, 1)   1024   2      splash     0.27    0.54    0.54    0.27    41.13 42.76 88.48
#   1b    v5p-256   (1, 128, 1)  1024   1      splash     0.07    0.14    0.07    0.07    20.41 20.75 88.48
#   1b    v5e-256   (1, 256, 1)  1024   1      splash     0.03    0.07    0.03    0.03    10.20 10.37 14.90
#   1b    h100x8    (1, 8, 1)    1024   4      cudnn      1.08    2.17    2.17    1.08    42.37 48.87 74.51
#   1b    h100x64   (1, 64, 1)   1024   1      cudnn      0.14    0.27    0.14    0.14    21.10 21.78 74.51
#   8b    v5p-64    (1, 32, 1)   1024   4      splash     1.16    2.32    2.32    1.16    43.06 50.03 88.48
#   8b    v5p-256   (1, 128, 1)  1024   1      splash     0.29    0.58    0.29    0.29    43.06 44.51 88.48
#   8b    v5e-256   (1, 256, 1)  1024   2      splash     0.15    0.29    0.29    0.15    10.76 11.64 14.90
#   8b    h100x8    (1, 8, 1)    1024   8      cudnn      4.65    9.29    9.29    4.65    33.43 61.30 74.51
#   8b    h100x64   (1, 64, 1)   1024   1      cudnn      0.58    1.16    0.58    0.58    33.43 36.33 74.51
MESHES = {
  ("300m", "v5p-64"): ((1, 32, 1), 1),
  ("1b", "v5p-64"): ((1, 32, 1), 2),
  ("8b", "v5p-64"): ((1, 32, 1), 4),
  **{(size, "v5p-256"): ((1, 128, 1), 1) for size in ("300m", "1b", "8b")},
  **{(size, "v5e-256"): ((1, 256, 1), 1) for size in ("300m", "1b")},
  ("8b", "v5e-256"): ((1, 256, 1), 2),
  **{(size, "h100x8"): ((1, 8, 1), 4) for size in ("300m", "1b")},
  ("8b", "h100x8"): ((1, 8, 1), 8),
  **{(size, "h100x64"): ((1, 64, 1), 1) for size in ("300m", "1b", "8b")},
}
# VideoPoet's global batch (sequences of the longest length group per step).
PAPER_BATCH = 1024


def get_config(arg=None):
  """Returns the LM config for `arg` (a variant name plus optional key=value items, e.g. topology=v5p-256)."""
  arg = parse_arg(arg, variant="demo", topology="", phase=1, ids="world")
  if arg.variant not in SIZES:
    raise ValueError(f"unknown LM variant {arg.variant!r}; known: {', '.join(SIZES)}")
  config = ml_collections.ConfigDict()
  config.trainer = "lm"
  config.variant = arg.variant
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Token shards of tokenizers/encode.py, and the splits trained and evaluated on.
  config.data.tokens_dir = "tokens/shapes_world"
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  config.data.read_threads = 1

  # Token id ranges (videopoet_jax/vocab.py); must match the token shards' tokenizers.
  config.vocab = ml_collections.ConfigDict()
  config.vocab.video_bits = 14
  config.vocab.audio_levels = 4
  config.vocab.audio_codebook_size = 1024
  # Text pieces (an upper bound of the sentencepiece model's size); 0 with external embeddings only.
  config.vocab.text_size = 512

  # Tokens per stream (videopoet_jax/tasks/sequence.py Layout).
  config.layout = ml_collections.ConfigDict()
  config.layout.latent_shape = (5, 8, 8)
  config.layout.audio_levels = 4
  config.layout.audio_frames = 106
  config.layout.text_budget = 16
  # Latent frames that condition a continuation: 3 latent frames = the first 9 frames (~1 s at 8 fps).
  config.layout.context_frames = 3

  width, depth, heads, head_dim, mlp_dim = SIZES[arg.variant]
  config.model = ml_collections.ConfigDict()
  config.model.width = width
  config.model.depth = depth
  config.model.heads = heads
  config.model.head_dim = head_dim
  config.model.mlp_dim = mlp_dim
  config.model.rope_base = 10_000.0
  config.model.tied_embeddings = False
  # Width of external text embeddings projected into the prefix (0: text enters as sentencepiece ids).
  config.model.text_embedding_dim = 0
  config.model.dtype = "float32"
  config.model.param_dtype = "float32"
  # Activation rematerialization in the backward pass: "none" | "full" | "dots".
  config.model.remat = "none"
  # Positions per chunk of the vocabulary-sized logits in the loss.
  config.model.logits_chunk = 256
  # Full-sequence attention: "dense" ([B, H, S, S] logits), or without an S x S tensor: "chunked" (online
  # softmax over key chunks of attention_chunk positions, any backend), "cudnn" (cuDNN flash attention,
  # GPU) or "splash" (Pallas splash kernels, attention_chunk-sized tiles, TPU). Decoding with the KV cache
  # is dense.
  config.model.attention = "dense"
  config.model.attention_chunk = 512
  # (rows, cols) of a latent frame: video tokens also get learned row and column embeddings of their cell
  # (model/transformer.py VideoPositions); (): RoPE positions only. video_cell_ids (the global id ranges
  # counted as cells: video ids and <mask>) is derived from the vocabulary below.
  config.model.video_grid = ()
  config.model.video_cell_ids = ()

  config.mixture = ml_collections.ConfigDict()
  config.mixture.weights = ml_collections.ConfigDict(dict(TASK_WEIGHTS))
  # Tasks train together (one length group) while their longest sequences are within this fraction.
  config.mixture.length_tolerance = 0.15
  # Image-output tasks get early_image_share of the samples for the first early_fraction of the steps.
  config.mixture.early_fraction = 0.25
  config.mixture.early_image_share = 0.9
  config.mixture.late_image_share = 0.1
  # Fraction of examples whose guidance inputs (the text) are dropped, for classifier-free guidance.
  config.mixture.guidance_drop_rate = 0.1
  # Tasks an earlier phase (the `train.init_from` model) trained that this run gives no weight: the export
  # still serves them.
  config.mixture.earlier_tasks = ()

  config.train = ml_collections.ConfigDict()
  config.train.steps = 3000
  # Sequences per step of the longest length group (shorter groups get proportionally more).
  config.train.batch_size = 4
  # Gradient accumulation: each step's batch runs as this many slices of its rows (activation memory of
  # one slice), summed into one update; must divide every length group's rows per data-parallel device.
  config.train.microbatches = 1
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 200
  config.train.b1 = 0.9
  config.train.b2 = 0.98
  config.train.weight_decay = 0.01
  config.train.grad_clip = 1.0
  # An LM export or workdir of the same architecture whose parameters the run starts from ("": random
  # init); the optimizer and schedule start afresh. How a model's training continues across sessions.
  config.train.init_from = ""
  # "content": the video ids' embedding rows start as a projection of what each id draws (a patch table
  # tokenizer's pixels; similar patches, similar rows), after any warm start. "": the plain init.
  config.train.video_embedding_init = ""
  # Loss weight of the audio ids at shapes_world's bounce clicks (their frames at every level, from the
  # records' `bounce_frames`; 1: every id alike): the LM never starts a click (README, "Where the clicks
  # fail").
  config.train.click_loss_weight = 1.0
  # EMA of the exported weights (0: export the trained weights).
  config.train.ema_decay = 0.0
  config.train.log_every = 25
  config.train.checkpoint_every = 250
  config.train.keep_checkpoints = 3
  # Validation loss / accuracy per task every eval_every steps, on the first eval_examples examples.
  config.train.eval_every = 250
  config.train.eval_examples = 16
  # A step whose loss or gradient is NaN/inf is skipped; this many in a row stop the run.
  config.train.max_nonfinite_steps = 10

  config.mesh = ml_collections.ConfigDict({"shape": (-1, 1, 1), "axes": ("data", "fsdp", "tensor")})
  config.sharding = ml_collections.ConfigDict()
  config.sharding.rules = SHARDING_RULES

  if arg.variant == "demo":
    config.data.tokens_dir = "tokens/world_20k"
    config.model.tied_embeddings = True
    # About 100 minutes of this CPU, one run: text-to-video and the tasks that share its motion get most of
    # the steps, and the image-first phase is short (the image tasks are what the video tasks' first frame
    # learns first).
    config.mixture.weights.update(
      text_to_video=4.0,
      image_to_video=1.5,
      continuation=1.5,
      video_to_audio=1.5,
      inpaint=0.75,
      outpaint=0.75,
      stylize=0.75,
      bridge=0.75,
      backward=0.75,
      unconditional_video=0.25,
      audio_to_video=0.25,
    )
    config.mixture.early_fraction = 0.1
    config.mixture.early_image_share = 0.5
    config.train.steps = 2400
    config.train.eval_every = 400
    config.train.checkpoint_every = 100
    # One loss chunk per sequence: a chunk shorter than the sequence pads it up to a multiple (340 -> 512
    # positions of 21k-wide logits); one chunk is 1.45x faster a step here.
    config.model.logits_chunk = 1024
    if arg.phase in (2, 3, 4):
      # Warm-started from phase 1 (no image-first phase again, a lower rate): the prompted video tasks, whose
      # motion is learned slowest, get most of the steps; every task keeps some weight, so none is forgotten.
      config.mixture.weights.update(
        text_to_video=4.0,
        text_to_image=0.5,
        inpaint=0.5,
        outpaint=0.5,
        stylize=0.3,
        video_to_audio=1.0,
        unconditional_video=0.1,
        audio_to_video=0.1,
      )
      config.mixture.early_fraction = 0.0
      config.train.steps = 1800
      config.train.warmup_steps = 50
      config.train.learning_rate = 7e-4
    if arg.phase == 3:
      # Warm-started from phase 2 on shapes_world's compositional_turns (the same world, 19% of the
      # clips turning after their first second, captioned "... moves left, then up ..."; a continuation is
      # prompted by the caption of what follows, `next_text`): continuation weighted up, so that extending
      # a clip follows a new prompt (stories); the other tasks as in phase 2.
      config.data.tokens_dir = "tokens/world_turns_20k"
      config.mixture.weights.continuation = 3.0
      config.train.steps = 1200
      config.train.learning_rate = 5e-4
    if arg.phase == 4 and arg.ids == "world":
      # Warm-started from phase 3 on compositional_all_turns (tokens/world_all_turns_6k: every clip turns
      # after its first second), so that a continuation must read its prompt: at 19% turning, continuing
      # the motion so far was right 81% of the time and phase 3 learned to follow a new prompt in 0.075.
      # Continuation gets most of the steps; the other tasks keep a little weight so that none is forgotten.
      config.data.tokens_dir = "tokens/world_all_turns_6k"
      config.mixture.weights.update(
        continuation=4.0,
        text_to_video=1.0,
        image_to_video=0.5,
        backward=0.3,
        bridge=0.3,
        video_to_audio=0.3,
        text_to_image=0.2,
        inpaint=0.2,
        outpaint=0.2,
        stylize=0.1,
      )
      config.train.steps = 500
      config.train.learning_rate = 3e-4
    if arg.phase not in (1, 2, 3, 4):
      raise ValueError(f"phase={arg.phase}: the demo variant has phases 1 to 4")
    if arg.ids == "table":
      # Phase 1 on compositional_turns (20,000 clips, a quarter turning after their first second) through
      # the world's patch table: every id one exact patch, 16,384 of them, so each id's embedding starts
      # from its pixels (what the LM learns of one patch carries to its neighbours); warm-started from a
      # world-id model (`train.init_from`: text, tasks and positions carry over, the video rows are new).
      # Phase 2 continues phase 1 (`train.init_from` = its workdir) with phase 2's weights and lower rate
      # (above) on the same clips: the two are one run split where a session may end.
      # Phase 3 continues phase 2 (the bundle of commit 0b44543) in a third cycle at a lower rate, with
      # text_to_video and image_to_video weighted up: direction is the attribute still rising (0.62 of a
      # 1.00 ceiling after phase 2) and the motion both tasks learn is the same.
      # Phase 4 continues phase 3 (the bundle of commit 33f44b6) with its weights, the video tokens now with
      # row and column embeddings (`model.video_grid`, zero at the start): phase 3 followed "up" and "down"
      # in 0.79 and 0.72 of its validation clips but "left" and "right" in 0.31 and 0.17, and a caption's
      # left/right word barely moved the likelihood of the first moving latent frame. (The embeddings stayed
      # near zero; the gain was the extra steps: README, "Where direction fails".) It is one cosine cycle of
      # 3,000 steps: it replaces two (1,500 steps, then a warm restart of 2,000 at a lower rate: the bundle
      # of commit 1028599), whose restart spent its first 400 steps regaining the loss.
      config.data.tokens_dir = "tokens/table_turns_20k"
      if arg.phase == 1:
        config.train.video_embedding_init = "content"
        config.mixture.weights.continuation = 3.0
        config.train.steps = 1200
        config.train.warmup_steps = 100
      elif arg.phase == 2:
        config.mixture.weights.continuation = 2.0
        config.train.steps = 1900
      else:
        config.mixture.weights.update(text_to_video=5.0, image_to_video=2.0, continuation=2.0)
        config.train.steps = 1500
        config.train.learning_rate = 5e-4
      if arg.phase == 4:
        config.model.video_grid = tuple(config.layout.latent_shape[1:])
        config.train.steps = 3000
        config.train.learning_rate = 4e-4
    elif arg.ids != "world":
      raise ValueError(f"ids={arg.ids!r}: world (configs/video_tokenizer.py:world) or table (:world_table)")
  elif arg.phase != 1 or arg.ids != "world":
    raise ValueError(f"phase={arg.phase}, ids={arg.ids} are only for the demo variant")
  if arg.variant == "tiny":
    config.vocab.video_bits = 4
    config.vocab.audio_levels = 2
    config.vocab.audio_codebook_size = 8
    config.vocab.text_size = 24
    config.layout.latent_shape = (3, 2, 2)
    config.layout.audio_levels = 2
    config.layout.audio_frames = 6
    config.layout.text_budget = 4
    config.layout.context_frames = 2
    config.mixture.length_tolerance = 0.5
    config.train.steps = 20
    config.train.batch_size = 8
    config.train.warmup_steps = 5
    config.train.log_every = 5
    config.train.checkpoint_every = 10
    config.train.eval_every = 10
    config.train.eval_examples = 4
    config.model.logits_chunk = 16
  elif arg.variant in ("300m", "1b", "8b"):
    config.vocab.video_bits = 18
    config.vocab.text_size = 0
    config.layout.latent_shape = (5, 16, 16)
    config.layout.text_budget = 64
    # T5-XL encoder outputs.
    config.model.text_embedding_dim = 2048
    config.model.dtype = "bfloat16"
    config.model.param_dtype = "float32"
    config.model.remat = "full"
    # Positions per loss chunk: a chunk's float32 logits are [rows, chunk, 266k vocabulary] per chip, and
    # the short text_to_image group has 8x the rows of the longest group.
    config.model.logits_chunk = 32
    config.train.steps = 300_000
    config.train.batch_size = 1024
    config.train.warmup_steps = 5000
    config.train.ema_decay = 0.9999
    config.train.log_every = 100
    config.train.checkpoint_every = 2000
    config.train.eval_every = 2000
    config.train.eval_examples = 256
    # Fully sharded data parallel over every device.
    config.mesh.shape = (1, -1, 1)

  # The hardware the mesh is laid out for ("": any; the mesh's -1 takes every device).
  config.topology = ml_collections.ConfigDict({"name": arg.topology, "chips": 0, "hbm_bytes": 0})
  if arg.topology:
    if (arg.variant, arg.topology) not in MESHES:
      known = sorted({t for size, t in MESHES if size == arg.variant}) or "none"
      raise ValueError(f"no mesh for LM variant {arg.variant!r} on {arg.topology!r}; known: {known}")
    config.topology.chips, config.topology.hbm_bytes = TOPOLOGIES[arg.topology]
    config.mesh.shape, config.train.microbatches = MESHES[(arg.variant, arg.topology)]
    config.train.batch_size = PAPER_BATCH
    config.model.attention = next(
      a for kind, a in TOPOLOGY_ATTENTION.items() if arg.topology.startswith(kind)
    )

  vocab = tasks.vocabulary(config)
  config.model.vocab_size = vocab.size
  if config.model.video_grid:
    config.model.video_cell_ids = vocab.video_cell_ranges()
  return config
