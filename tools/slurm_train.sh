#!/usr/bin/env bash
# Training on a Slurm cluster, as MMSeg's.
#
# Usage: [GPUS=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG [options]
# Environment: GPUS (tasks in all), GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS,
# PYTHON (interpreter, default python).

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    $PYTHON -u "$(dirname "$0")"/train.py "${CONFIG}" --launcher="slurm" "${@:4}"
