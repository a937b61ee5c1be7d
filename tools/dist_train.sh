#!/usr/bin/env bash
# Distributed training with torchrun (one process per GPU), as MMSeg's.
#
# Usage: tools/dist_train.sh CONFIG NPROC [train.py options]
#   e.g. tools/dist_train.sh configs/cam/cam_r18-w32_1xb32-600it_demo-128x128.py 2
#
# Environment: PORT (rendezvous port, default 29500), NNODES, NODE_RANK,
# MASTER_ADDR (multi-node runs) and PYTHON (interpreter, default python).
#
# The configs use the NCCL backend (env_cfg.dist_cfg.backend='nccl'), which
# needs one GPU per process. On CPU (or to debug without GPUs) use gloo:
#   CUDA_VISIBLE_DEVICES= tools/dist_train.sh CONFIG 2 \
#       --cfg-options env_cfg.dist_cfg.backend=gloo
# The batch size in a config is per process: NPROC x batch_size images make
# one optimisation step.

CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
$PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC \
    --master_port=$PORT \
    "$(dirname "$0")"/train.py \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
