#!/bin/bash
# Still images for the video tokenizer's camera-move clips, from Debian packages: opencv-doc's sample
# photos plus the desktop wallpapers (photographs and rendered art) of GNOME, MATE, KDE Plasma, UKUI and
# Lomiri. About 350 MB of packages are downloaded once; nothing is installed system-wide.
# Usage: scripts/fetch_photos.sh OUT_DIR   -> OUT_DIR/*.jpg|png|webp (one file per picture)
# Camera-calibration chessboards, synthetic test patterns and preview screenshots are left out.
set -euo pipefail
out=$(realpath -m "${1:?usage: fetch_photos.sh OUT_DIR}")
mkdir -p "$out"
packages="opencv-doc gnome-backgrounds mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers
  lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
# shellcheck disable=SC2086
apt-get download $packages 2>/dev/null || { apt-get update -qq && apt-get download $packages; }
for deb in *.deb; do dpkg -x "$deb" x; done
find x -path '*examples/data*' \( -iname '*.jpg' -o -iname '*.png' \) \
  -not -regex '.*/\(left\|right\|chessboard\|pic\|box\|digits\|imageText\|text\|sudoku\|opencv-logo\|ml\|gradient\|ellipses\|detect_blob\|cards\|licenseplate\|notes\|HappyFish\|LinuxLogo\|WindowsLogo\|orange\|apple\|ela_\|graf\|smarties\|blox\|stuff\|data\|letter\|mask\|templ\|aloeGT\|lena_tmpl\|tmpl\|cat\|water_coins\|j\|img\|intrinsic\|calib\|alpha\|shape\|tsukuba\|pca\)[^/]*' \
  -exec cp {} "$out/" \;
# Plasma keeps each wallpaper as several resolutions in <name>/contents/images: take the lexically first
# resolution (some of them are portrait).
for dir in x/usr/share/wallpapers/*/contents/images; do
  name=$(basename "$(dirname "$(dirname "$dir")")")
  file=$(find "$dir" -maxdepth 1 -type f | sort | head -n 1)
  [ -n "$file" ] && cp "$file" "$out/plasma-$name.${file##*.}"
done
find x/usr/share/backgrounds -type f \( -iname '*.jpg' -o -iname '*.png' -o -iname '*.webp' \) -size +50k \
  -exec cp {} "$out/" \;
echo "photos: $(ls "$out" | wc -l)"
