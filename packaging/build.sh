#!/usr/bin/env bash
# Build the one-folder desktop bundle, dist/segstudio/, from this checkout, then run its
# self-test inside it. Run from an environment where segstudio and its dependencies are installed
# (the torch build installed there decides the bundle's size: see README "Desktop bundle"):
#
#     pip install -e ".[bundle]" && bash packaging/build.sh
#
# Prints the build time, the bundle's size and the self-test's lines; exits non-zero when the
# build or the self-test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
pyinstaller --noconfirm --clean segstudio.spec
built=$(date +%s)
echo "build: $((built - start)) s; bundle: $(du -sh dist/segstudio | cut -f1) in $(find dist/segstudio -type f | wc -l) files"
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} dist/segstudio/segstudio --self-test
