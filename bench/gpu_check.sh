#!/usr/bin/env bash
# The zoo's GPU check, as one script for a lent GPU machine (run from the repository root with
# the requirements installed), on the full-resolution PBC sample at 224 px:
#  1. training images/s of the zoo's path against a plain ImageFolder + PIL + fp32 loop, per
#     member, with the MFU reached; again with torch.compile for two members (compiling falls
#     in the untimed warm-up batches);
#  2. one epoch per member, fp32 against mixed precision, and channels_last for ResNet-50;
#  3. the data path with 8 loader workers;
#  4. two members through the zoo itself with --compile and augmentation on the device.
set -uo pipefail
DATA=${1:-../shared/data/pbc-fullres-sample}
# a lease is short: a step that fails is reported and the next one still runs
FAILED=()
step() { echo "== $*"; "$@" || FAILED+=("$*"); }
MEMBERS=resnet18,resnet50,vgg16,densenet121,mobilenet_v2,efficientnet_v2_s
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step python -m bench.throughput --data "$DATA" --size 224 --batch-size 64 --images 1920 \
    --members "$MEMBERS"
step python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 \
    --precisions fp32,auto --models "$MEMBERS"
step python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 \
    --precisions fp32,auto --models resnet50 --channels-last
step python -m bench.data_path --data "$DATA" --size 224 --workers 8 --limit 0
# compiling takes longest: last, so that a short lease still gets the numbers above
step python -m bench.throughput --data "$DATA" --size 224 --batch-size 64 --images 1920 \
    --members resnet50,mobilenet_v2 --compile
ZOO=$(mktemp -d)
step python -m pipeline.zoo --models resnet18,mobilenet_v2 --data "$DATA" --weights none \
    --epochs 2 --compile --out "$ZOO" --cache-dir "$ZOO/cache" --no-progress
python - "$ZOO" <<'PY'
import json, pathlib, sys
for meta in sorted(pathlib.Path(sys.argv[1]).glob("submissions/*/*/meta.json")):
    m = json.loads(meta.read_text())
    print(m["member"], m["device"], m["precision"], "compiled", m["compiled"],
          "on device:", m["augment_on_device"], f"{m['train_time_s']} s")
PY
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
