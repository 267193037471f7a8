#!/usr/bin/env bash
# Issue 15's GPU measurements, in two parts that each fit one 10-minute command on one GPU:
#
#   bash scripts/gpu_throughput.sh steps OUT   # ~5 min: every method's train step x precision x speed options,
#                                              # then BSRNet x4 bf16 one option at a time (+ compile) with a profile
#   bash scripts/gpu_throughput.sh data OUT    # ~3 min: every degradation pipeline at B 16/64 on the GPU, the
#                                              # dynamic-conv formulations, the DataLoader feeding each method
#
# OUT receives one .log per benchmark, and the .json rows of the train-step and data-path ones. $PYTHON (default
# python3) must import blindsr; $IMAGES (default: bench_data_path.py's, $BLINDSR_DATA/BSDS500_train) holds the
# photos the data-path benchmark reads. Each benchmark's own
# docstring says what its columns mean; a row that fails is reported and the run goes on.
set -uo pipefail
part=${1:?usage: gpu_throughput.sh steps|data OUT}
out=${2:?usage: gpu_throughput.sh steps|data OUT}
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi -L || { echo 'gpu_throughput.sh: no NVIDIA GPU visible (nvidia-smi failed)' >&2; exit 2; }
"$py" -c 'import torch, blindsr; print("torch", torch.__version__, torch.cuda.get_device_name(0))' || exit 2

run() {  # name, then the command: output to the terminal and to OUT/name.log
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log"
}

case $part in
steps)
    run train_step "$py" scripts/bench_train_step.py --steps 5 --warmup 2 --budget 210 --out "$out/train_step.json"
    run train_step_options "$py" scripts/bench_train_step.py --methods bsrnet --precisions bf16 \
        --options none,channels_last,cudnn_benchmark,fused,all --steps 5 --warmup 3 --budget 45 --profile 12 \
        --out "$out/train_step_options.json"
    ;;
data)
    images=()
    [[ -n ${IMAGES:-} ]] && images=(--images "$IMAGES")
    run degradations "$py" scripts/bench_degradations.py --devices cuda --batches 16 64 --repeats 3
    run dynamic_conv "$py" scripts/bench_dynamic_conv.py --device cuda --compile --repeats 9
    run data_path "$py" scripts/bench_data_path.py "${images[@]}" --workers 4 8 --pin off on --rounds 2 \
        --step-ms 50 --out "$out/data_path.json"
    ;;
*)
    echo "gpu_throughput.sh: unknown part '$part' (steps or data)" >&2; exit 2 ;;
esac
