#!/usr/bin/env bash
# Testing on a Slurm cluster, as MMSeg's.
#
# Usage: [GPUS=4] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT \
#            [options]
# Environment: GPUS (tasks in all), GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS,
# PYTHON (interpreter, default python).

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
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
    $PYTHON -u "$(dirname "$0")"/test.py "${CONFIG}" "${CHECKPOINT}" --launcher="slurm" "${@:5}"
