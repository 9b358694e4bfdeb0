"""VideoPoet's super-resolution stage: a bidirectional transformer in the video tokenizer's token space that
raises a clip 2x, from its low-resolution ids and its text (videopoet_jax/model/sr_transformer.py), trained
with the MAGVIT masked-token objective (training/masked_tokens.py) and sampled non-autoregressively
(decoding/masked_sampler.py).

Train: `python train.py --config=configs/sr.py:demo --workdir=runs/sr_demo` (training/sr.py: fresh
shapes_world clips rendered at 128 pixels every step, tokenized on the fly by frozen tokenizers).

Variants:
  tiny   -- the tests' model (a 2x4x4 id grid).
  demo   -- shapes_world 64 -> 128 pixels: 5x8x8 -> 5x16x16 ids of 14 bits, both patch tables (one token
            per id, embeddings started from the patches' pixels), for this CPU.
  paper  -- VideoPoet's first 2x stage (224x128 -> 448x256: ids 5x56x32 from 5x28x16, 18 bits as 2 x 9,
            about 1B parameters, windows (1,56,4) / (1,8,32) / (5,8,8)); `paper,stage=2` the second
            (448x256 -> 896x512: 5x112x64 ids, about 500M, windows (1,112,2) / (1,4,64) / (5,8,8)).
"""

import ml_collections

from videopoet_jax.config_utils import data_parallel_mesh, parse_arg

# (width, depth, heads, head_dim, mlp_dim) of the paper's two stages: about 1B and 500M parameters.
PAPER_SIZES = {1: (1536, 14, 12, 128, 6144), 2: (1152, 12, 9, 128, 4608)}


def get_config(arg=None):
  """Returns the SR config for `arg` (a variant name plus optional key=value items, e.g. `paper,stage=2`)."""
  arg = parse_arg(arg, variant="demo", stage=1)
  config = ml_collections.ConfigDict()
  config.trainer = "sr"
  config.variant = arg.variant
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  # High-resolution id grid (T, H, W); the low-resolution grid is (T, H/2, W/2).
  config.model.grid = (5, 16, 16)
  config.model.code_bits = 14
  # Token factorization: each id as `factors` sub-ids of code_bits / factors bits (summed embeddings, one
  # output head each).
  config.model.factors = 2
  # Text ids (sentencepiece pieces; 0 is padding).
  config.model.text_vocab = 512
  config.model.width = 128
  config.model.depth = 4
  config.model.heads = 4
  config.model.head_dim = 32
  config.model.mlp_dim = 512
  # The three self-attention windows of every block (T, H, W): vertical, horizontal, temporal.
  config.model.windows = ((1, 16, 4), (1, 4, 16), (5, 4, 4))
  # Cross-attention to the low-resolution ids: this window of the high-resolution grid attends to the one of
  # the same layout at half its spatial size.
  config.model.cross_window = (5, 4, 4)
  config.model.dtype = "float32"
  config.model.param_dtype = "float32"
  # Each high-resolution position also starts from its low-resolution token's embedding (nearest 2x); the
  # paper has the cross-attention only. Without it the demo stage learned to draw the background and lost
  # the object (README "Super-resolution").
  config.model.low_res_input = True
  # Activation rematerialization of each block in the backward pass: "none" | "full" | "dots".
  config.model.remat = "none"

  config.objective = ml_collections.ConfigDict()
  # Each condition dropped independently at this rate (guidance on each at sampling).
  config.objective.condition_dropout = 0.1
  # Noise augmentation: a fraction in [0, max_resample] of the low-resolution ids redrawn at random.
  config.objective.max_resample = 0.1

  config.data = ml_collections.ConfigDict()
  # High-resolution clips: shapes_world rendered at `scale` x its 64 pixels; a share of them turn mid-clip
  # (as the base LM's training clips do).
  config.data.scale = 2
  config.data.turn_fraction = 0.25
  # Caption pieces kept (shapes_world captions take at most ~25).
  config.data.text_length = 32
  # The base model's text model and video tokenizer (the low-resolution ids are its), and the
  # high-resolution tokenizer (configs/video_tokenizer.py:world128) whose ids the stage predicts.
  config.data.text_model = "videopoet_jax/assets/lm/text.model"
  config.data.low_res_tokenizer = "videopoet_jax/assets/lm/video_tokenizer"
  config.data.high_res_tokenizer = "runs/vt_world128"
  config.data.workers = 2

  config.sampling = ml_collections.ConfigDict()
  config.sampling.steps = 24
  config.sampling.temperature = 1.0
  config.sampling.text_guidance = 4.0
  config.sampling.low_res_guidance = 1.0

  config.train = ml_collections.ConfigDict()
  config.train.steps = 3000
  config.train.batch_size = 8
  # Adam, warmup then cosine decay to 0; global-norm clipping; EMA of the exported weights.
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 100
  config.train.b1 = 0.9
  config.train.b2 = 0.99
  config.train.grad_clip = 1.0
  # 0.99: a 1,000-step demo run's export is its last ~100 steps (at 0.999 a third of it was still the
  # random initialization at step 1,100).
  config.train.ema_decay = 0.99
  config.train.log_every = 25
  config.train.checkpoint_every = 250
  config.train.keep_checkpoints = 2
  # Skipped (NaN/inf) steps in a row that stop the run.
  config.train.max_nonfinite_steps = 20
  # "", or "content": the id embeddings and the output head start from what each id draws (patch
  # table tokenizers, model.factors=1; training/sr.py).
  config.train.video_embedding_init = ""
  config.mesh = data_parallel_mesh()

  if arg.variant == "tiny":
    config.model.update(
      grid=(2, 4, 4), code_bits=6, factors=2, text_vocab=16, width=32, depth=1, heads=2, head_dim=16,
      mlp_dim=64, windows=((1, 4, 2), (1, 2, 4), (2, 2, 2)), cross_window=(2, 2, 2),
    )  # fmt: skip
    config.sampling.steps = 4
    config.train.steps = 20
  elif arg.variant == "paper":
    if arg.stage not in PAPER_SIZES:
      raise ValueError(f"stage={arg.stage}: the paper has stages 1 and 2")
    width, depth, heads, head_dim, mlp_dim = PAPER_SIZES[arg.stage]
    config.model.update(
      code_bits=18, factors=2, text_vocab=32_000, width=width, depth=depth, heads=heads, head_dim=head_dim,
      mlp_dim=mlp_dim, dtype="bfloat16", remat="full", low_res_input=False,
    )  # fmt: skip
    if arg.stage == 1:
      config.model.grid = (5, 56, 32)
      config.model.windows = ((1, 56, 4), (1, 8, 32), (5, 8, 8))
      config.sampling.text_guidance, config.sampling.low_res_guidance = 4.0, 1.0
    else:
      config.model.grid = (5, 112, 64)
      config.model.windows = ((1, 112, 2), (1, 4, 64), (5, 8, 8))
      config.sampling.text_guidance, config.sampling.low_res_guidance = 8.0, 2.0
    config.model.cross_window = (5, 8, 8)
    config.train.batch_size = 256
    config.train.ema_decay = 0.9999
  elif arg.variant == "demo":
    # Both tokenizers are patch tables (the LM's world tokenizer and configs/video_tokenizer.py:world128):
    # an id's bits say nothing of its patch, so each id is one token, started from its patch's pixels.
    config.model.factors = 1
    config.train.video_embedding_init = "content"
    # About 7 s a step here (the 16,384-way head at every position): 90 minutes. A run stopped at step 375
    # had not learned the objects (README "Super-resolution"): not bundled.
    config.train.steps = 750
    config.train.checkpoint_every = 100
  else:
    raise ValueError(f"unknown SR variant {arg.variant!r}: tiny | demo | paper")
  return config
