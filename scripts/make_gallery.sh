#!/usr/bin/env bash
# The README's gallery: one sample of every task from the bundled model, made by sample.py.
#   bash scripts/make_gallery.sh [OUT]          (default docs/media/gallery; about 70 s on 2 CPU cores)
# The inputs are a shapes_world test clip (a seed never trained on), written by the preview program with its
# soundtrack, and that clip's first frame.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/media/gallery}
mkdir -p "$out"
show=(--display_size=128 --seed=0)  # sampling: the model's own settings (its sampling.json), as the evaluation

python -m videopoet_jax.data.preview --dataset=shapes_world --split=test --num=1 --out="$out/input"
clip=$out/input/0000.mp4
python -c "import sys, imageio.v3 as iio; iio.imwrite(sys.argv[2], iio.imread(sys.argv[1], index=0))" \
  "$clip" "$out/input_first_frame.png"
python sample.py --task=text_to_video --prompt="a large red square moves right on a white background" \
  --output="$out/text_to_video.gif" "${show[@]}"
python sample.py --task=text_to_video --prompt="a large yellow circle moves down on a black background" \
  --seconds=4 --output="$out/text_to_video_4s.gif" "${show[@]}"
python sample.py --task=text_to_video --prompt="a large red square moves right, then down on a white background" \
  --output="$out/text_to_video_turn.gif" "${show[@]}"
python sample.py --task=text_to_image --prompt="a large cyan triangle stays still on a gray background" \
  --output="$out/text_to_image.png" "${show[@]}"
python sample.py --task=image_to_video --image="$out/input_first_frame.png" --output="$out/image_to_video.gif" \
  "${show[@]}"
python sample.py --task=extend --video="$clip" --seconds=3 --output="$out/extend.gif" "${show[@]}"
python sample.py --task=extend --direction=backward --video="$clip" --seconds=1 --output="$out/backward.gif" \
  "${show[@]}"
python -c "import sys, imageio.v3 as iio; iio.imwrite(sys.argv[2], iio.imread(sys.argv[1])[-1])" \
  "$clip" "$out/input_last_frame.png"
python sample.py --task=bridge --image="$out/input_first_frame.png" --last_image="$out/input_last_frame.png" \
  --output="$out/bridge.gif" "${show[@]}"
python sample.py --task=loop --prompt="a small magenta circle moves up on a white background" \
  --output="$out/loop.gif" "${show[@]}"
python sample.py --task=story --output="$out/story.gif" "${show[@]}" \
  --prompts="a large blue square moves right on a white background|a large blue square moves down on a white background|a large blue square moves left on a white background"
python sample.py --task=inpaint --video="$clip" --output="$out/inpaint.gif" "${show[@]}"
python sample.py --task=outpaint --video="$clip" --output="$out/outpaint.gif" "${show[@]}"
python sample.py --task=stylize --video="$clip" --prompt="a large green circle moves left on a gray background" \
  --output="$out/stylize.gif" "${show[@]}"
python sample.py --task=video_to_audio --video="$clip" --output="$out/video_to_audio.wav" "${show[@]}"
python sample.py --task=text_to_audio --prompt="a large blue square moves up on a black background" \
  --output="$out/text_to_audio.wav" "${show[@]}"
# Super-resolution: a text_to_video clip (64 pixels), then the SR stage on it (128), shown side by side with
# the base clip upscaled by nearest neighbour and bicubically (each 128 pixels; labels above);
# only for a bundle with an SR stage (lm/sr).
if [ -d videopoet_jax/assets/lm/sr ]; then
  sr_prompt="a large green triangle moves right on a black background"
  python sample.py --task=text_to_video --prompt="$sr_prompt" --output="$out/sr_base.mp4" --seed=0
  python sample.py --task=super_resolve --video="$out/sr_base.mp4" --prompt="$sr_prompt" --output="$out/sr_128.mp4" \
    --seed=0
  python -c "import sys, imageio.v3 as iio, jax, numpy as np
from videopoet_jax.data import media
base, high = iio.imread(sys.argv[1]), iio.imread(sys.argv[2])
t, s = base.shape[:2]
nearest = base.repeat(2, axis=1).repeat(2, axis=2)
bicubic = media.from_model_range(jax.image.resize(media.to_model_range(base), (t, 2 * s, 2 * s, 3), 'cubic'))
gap = np.full((t, 2 * s, 4, 3), 255, np.uint8)
media.write_video(sys.argv[3], np.concatenate([nearest, gap, bicubic, gap, high], axis=2), 8)" \
    "$out/sr_base.mp4" "$out/sr_128.mp4" "$out/super_resolution.gif"
fi
# The input clip as a GIF for the README (sample.py reads the mp4 itself).
python -c "import sys, imageio.v3 as iio
from videopoet_jax.data import media
media.write_video(sys.argv[2], iio.imread(sys.argv[1]), 8, 128)" "$clip" "$out/input.gif"
du -sh "$out"
