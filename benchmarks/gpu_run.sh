#!/usr/bin/env bash
# The one command run on a lent GPU machine (see benchmarks/README.md). It expects, carried
# beside the checkout: .whl/ with wheels for what the machine's image lacks (pycocotools,
# segment-anything, segment-anything-hq; the image has torch, torchvision, timm, OpenCV, Pillow
# and tifffile) and, for the ISBI part, bench-data/ with a copy of ../shared/data/isbi2012-membrane.
# PARTS picks what runs (default: all): sam gpu_check isbi. Results go to $OUT.
set -o pipefail
OUT=${OUT:-bench-out}
PARTS=${PARTS:-sam gpu_check isbi}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
  | tee -a "$OUT/nvidia.txt"
for part in $PARTS; do
  case $part in
    sam)  # Segment Anything: ViT-B (the GPU target) and the CPU default, random weights
      for model in sam_vit_b sam_hq_vit_tiny; do
        timeout 240 python3 benchmarks/sam_latency.py --device cuda --model "$model" --dwell 1 \
          --json "$OUT/sam_$model.json" 2>&1 | tee "$OUT/sam_$model.log"
      done ;;
    gpu_check)
      timeout 420 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log" ;;
    isbi)
      timeout 200 python3 benchmarks/isbi_unet.py --minutes 1 --device cuda --data bench-data/isbi2012-membrane \
        --out-dir "$OUT" 2>&1 | tee "$OUT/isbi.log" ;;
  esac
done
