#!/usr/bin/env bash
# Starts N cooperative_tf workers on this machine (127.0.0.1) as one
# MultiWorkerMirroredStrategy cluster, each with its own TF_CONFIG.
#
#   launch/local_workers.sh 2 --task=zappos --workdir=runs/zappos_2w
#
# All arguments after N go to `python -m cooperative_tf.launch`. The work
# directory must be shared by the workers (here: the same disk). Worker 0 is
# the chief: it alone keeps checkpoints, sample grids and the config. If any
# worker dies, stop the rest and run the same command again: every worker
# resumes from the chief's last checkpoint.
set -euo pipefail
n=${1:?usage: local_workers.sh N [launcher flags...]}
shift
python=${PYTHON:-python3}
base_port=${BASE_PORT:-$((20000 + RANDOM % 20000))}
workers=""
for ((i = 0; i < n; i++)); do
  workers+="${workers:+, }\"127.0.0.1:$((base_port + i))\""
done
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for ((i = 0; i < n; i++)); do
  TF_CONFIG="{\"cluster\": {\"worker\": [${workers}]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    "$python" -m cooperative_tf.launch --strategy=multi_worker "$@" \
    > >(sed "s/^/[worker $i] /") 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
trap - EXIT
exit "$status"
