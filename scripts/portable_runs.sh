#!/usr/bin/env bash
# Train several classifier recipes side by side with training.portable (Keras
# on JAX) on a lent GPU machine, within a time budget; each run comes back as
# one archive that `eyepic export classifier --from-run` reads once unpacked.
#
#   scripts/portable_runs.sh BUNDLE SECONDS NAME=CONFIG[:field=value,...] ...
#
# BUNDLE: from `python -m training.portable bundle`. SECONDS: each run's
# training budget (--max-seconds). Wheels in .whl/ (keras and what the machine
# lacks) are installed first. Logs and archives go to $OUT (default: out/).
# TRAIN_ARGS (e.g. "--workers 6 --steps-per-execution 8") go to every run;
# PYTHON (default python3) and KERAS_BACKEND (default jax) choose the runtime.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BUNDLE SECONDS NAME=CONFIG[:field=value,...] ..." >&2; exit 2; }
bundle=$1 seconds=$2
shift 2
out=${OUT:-out}
mkdir -p "$out" runs
if compgen -G ".whl/*.whl" > /dev/null; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/device.txt" 2>&1 || true
names=() pids=()
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}
  config=${rest%%:*} sets=()
  if [[ $rest == *:* ]]; then
    IFS=, read -ra fields <<< "${rest#*:}"
    for field in "${fields[@]}"; do sets+=(--set "$field"); done
  fi
  "${PYTHON:-python3}" -m training.portable train --bundle "$bundle" --config "$config" --out "runs/$name" \
    --max-seconds "$seconds" ${TRAIN_ARGS:-} "${sets[@]}" > "$out/$name.log" 2>&1 &
  names+=("$name") pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    tar czf "$out/${names[$i]}.tgz" -C runs "${names[$i]}"
  else
    echo "run ${names[$i]} failed: see $out/${names[$i]}.log" >&2
    status=1
  fi
done
exit $status
