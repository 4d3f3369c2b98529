#!/usr/bin/env bash
# The one command run on a lent GPU machine (see benchmarks/README.md). It expects, carried
# beside the checkout: .whl/ with a pycocotools wheel for the machine's Python (the image has
# torch, torchvision, OpenCV, Pillow and tifffile but not pycocotools) and bench-data/ with a
# copy of ../shared/data/isbi2012-membrane. Results go to $OUT.
set -o pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia.txt"
python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
python3 benchmarks/isbi_unet.py --minutes 1 --device cuda --data bench-data/isbi2012-membrane --out-dir "$OUT" \
  2>&1 | tee "$OUT/isbi.log"
