#!/usr/bin/env bash
# The zoo's GPU check, as one script for a lent GPU machine (run from the repository root with
# the requirements installed): one training epoch per member at 224 px on the full-resolution
# PBC sample, fp32 against mixed precision, then the data path at 224 px with 8 workers, then
# training images/s of the zoo's path against a plain ImageFolder + PIL + fp32 loop.
set -euo pipefail
DATA=${1:-../shared/data/pbc-fullres-sample}
MEMBERS=resnet18,resnet50,vgg16,densenet121,mobilenet_v2,efficientnet_v2_s
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -m bench.throughput --data "$DATA" --size 224 --batch-size 64 --images 1920 \
    --members "$MEMBERS"
python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 --precisions fp32,auto \
    --models "$MEMBERS"
python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 --precisions fp32,auto \
    --models resnet50 --channels-last
python -m bench.data_path --data "$DATA" --size 224 --workers 8 --limit 0
