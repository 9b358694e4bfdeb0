#!/usr/bin/env bash
# Reproduces the bundled default model from scratch on a CPU machine, stage by stage:
#   1. real media (Debian packages)  2. video tokenizer  3. audio tokenizer  4. shapes_world token shards
#   5. the LM  6. copy the exports into videopoet_jax/assets/ (the files sample.py and eval.py load).
# Every stage resumes where it stopped: run the same command again after a kill. Each stage's wall time
# is appended to runs/build_times.tsv.
#
#   bash scripts/build_bundled_model.sh [LM_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
lm_steps=${1:-1000}
mkdir -p runs

timed() {  # timed NAME COMMAND...: runs COMMAND, records its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@"
  printf '%s\t%s\n' "$name" "$(($(date +%s) - start))" >> runs/build_times.tsv
}

[ -d media/video ] || timed media bash ../shared/scripts/fetch_real_media.sh media
[ -d media/photos ] || timed photos bash scripts/fetch_photos.sh media/photos
timed video_tokenizer python train.py --config=configs/video_tokenizer.py:demo --workdir=runs/vt_demo
timed audio_tokenizer python train.py --config=configs/audio_tokenizer.py:demo --workdir=runs/at_demo
timed encode python tokenizers/encode.py --dataset=shapes_world --video_tokenizer=runs/vt_demo \
  --audio_tokenizer=runs/at_demo --out=tokens/shapes_world
timed lm python train.py --config=configs/lm.py:demo --workdir=runs/lm_demo --config.train.steps="$lm_steps"
for name in video_tokenizer:vt_demo audio_tokenizer:at_demo lm:lm_demo; do
  rm -rf "videopoet_jax/assets/${name%%:*}.new"
  cp -r "runs/${name#*:}/export" "videopoet_jax/assets/${name%%:*}.new"
  cp videopoet_jax/assets/"${name%%:*}"/MODEL_CARD.md "videopoet_jax/assets/${name%%:*}.new/" 2>/dev/null || true
  rm -rf "videopoet_jax/assets/${name%%:*}"
  mv "videopoet_jax/assets/${name%%:*}.new" "videopoet_jax/assets/${name%%:*}"
done
echo "bundled: $(du -sh videopoet_jax/assets | cut -f1); stage times in runs/build_times.tsv"
