#!/usr/bin/env bash
# The zoo's GPU check, as one script for a lent GPU machine (run from the repository root with
# the requirements installed): one training epoch per member at 224 px on the full-resolution
# PBC sample, fp32 against mixed precision, then the data path at 224 px with 8 workers.
set -euo pipefail
DATA=${1:-../shared/data/pbc-fullres-sample}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 --precisions fp32,auto \
    --models resnet18,resnet50,vgg16,densenet121,mobilenet_v2,efficientnet_v2_s
python -m bench.amp_speed --data "$DATA" --size 224 --batch-size 64 --precisions fp32,auto \
    --models resnet50 --channels-last
python -m bench.data_path --data "$DATA" --size 224 --workers 8 --limit 0
