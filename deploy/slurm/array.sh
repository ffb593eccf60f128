#!/bin/bash
# digitflow over a Slurm job array: array task K reads share K of N of a job folder
# (digitflow run --shard K/N, K = SLURM_ARRAY_TASK_ID), and a job that depends on the whole
# array (afterok) merges the N outputs with digitflow merge. How to use it: README.md.
#
#   deploy/slurm/array.sh submit JOB_DIR OUT_ROOT N    submits both jobs, prints their ids
#   (MAX_RUNNING=M in the environment: at most M array tasks at once)
#
# The submitted jobs run this same script as `array.sh shard ...` and `array.sh merge ...`.
# The #SBATCH lines below size one array task; edit them, or override them on the command
# line of sbatch (SBATCH_* environment variables work too).
#SBATCH --job-name=digitflow
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=04:00:00
set -euo pipefail

digitflow=${DIGITFLOW:-digitflow}  # the binary; DIGITFLOW_HOME names its config/ and models/

usage() {
  echo "usage: $0 submit JOB_DIR OUT_ROOT N" >&2
  exit 2
}

case "${1:-}" in
  submit)
    [ $# -eq 4 ] || usage
    [ -d "$2" ] || { echo "$0: $2: no such folder" >&2; exit 2; }
    [[ "$4" =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a whole number from 1, got '$4'" >&2; exit 2; }
    job_dir=$(realpath "$2")
    out_root=$(realpath -m "$3")
    n=$4
    script=$(realpath "$0")
    mkdir -p "$out_root/logs"
    array=$(sbatch --parsable --array="0-$((n - 1))${MAX_RUNNING:+%$MAX_RUNNING}" --output="$out_root/logs/shard-%a.out" \
      "$script" shard "$job_dir" "$out_root" "$n")
    array=${array%%;*}  # "id;cluster" on federated setups
    merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --cpus-per-task=1 --mem=1G \
      --job-name=digitflow-merge --output="$out_root/logs/merge.out" "$script" merge "$out_root" "$n")
    merge=${merge%%;*}
    echo "shards: job $array (array 0-$((n - 1))); merge: job $merge, after every shard succeeds"
    echo "results: $out_root/merged; logs: $out_root/logs"
    ;;
  shard)
    [ $# -eq 4 ] || usage
    k=${SLURM_ARRAY_TASK_ID:?not in a Slurm array task: submit with $0 submit JOB_DIR OUT_ROOT N}
    status=0
    "$digitflow" run "$2" --out "$3/shard-$k" --shard "$k/$4" --threads "${SLURM_CPUS_PER_TASK:-0}" || status=$?
    # 3: some pages could not be read; each is an error line in the results and the shard
    # is complete, so the task succeeds (afterok then starts the merge).
    if [ "$status" -eq 3 ]; then status=0; fi
    exit "$status"
    ;;
  merge)
    [ $# -eq 3 ] || usage
    inputs=()
    for ((k = 0; k < $3; k++)); do inputs+=("$2/shard-$k"); done
    exec "$digitflow" merge "${inputs[@]}" --out "$2/merged"
    ;;
  *)
    usage
    ;;
esac
