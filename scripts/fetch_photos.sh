#!/bin/bash
# Photos for the video tokenizer's camera-move clips: the sample images of Debian's opencv-doc package.
# Usage: scripts/fetch_photos.sh OUT_DIR   -> OUT_DIR/*.jpg|png
# Camera-calibration chessboards and synthetic test patterns are left out: they are not photos.
set -euo pipefail
out=${1:?usage: fetch_photos.sh OUT_DIR}
mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download opencv-doc 2>/dev/null || { apt-get update -qq && apt-get download opencv-doc; }
dpkg -x opencv-doc_*.deb x
find x -path '*examples/data*' \( -iname '*.jpg' -o -iname '*.png' \) \
  -not -regex '.*/\(left\|right\|chessboard\|pic\|box\|digits\|imageText\|text\|sudoku\|opencv-logo\|ml\|gradient\|ellipses\|detect_blob\|cards\|licenseplate\|notes\|HappyFish\|LinuxLogo\|WindowsLogo\|orange\|apple\|ela_\|graf\|smarties\|blox\|stuff\|data\|letter\|mask\|templ\|aloeGT\|lena_tmpl\|tmpl\|cat\|water_coins\|j\|img\|intrinsic\|calib\|alpha\|shape\|tsukuba\|pca\)[^/]*' \
  -exec cp {} "$out/" \;
echo "photos: $(ls "$out" | wc -l)"
