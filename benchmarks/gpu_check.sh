#!/usr/bin/env bash
# The GPU checks in one run: hwsim's tests with CUDA visible (simulate's default device is then CUDA, so every
# test that does not pin device="cpu" runs on the GPU), the NVML and CUDA-training tests, then the benchmarks
# with --device cuda: hwsim_scale.py (VGG-11 / ResNet-20 batches, and the 10,000-sample CIFAR-10-shaped test
# set at T = 32), hwsim_vs_lava.py, stop_memory.py (one STOP step's peak memory, issue 14) and energy.py
# (NVML-measured GPU points beside the model's on the lent board's profile, issue 10: --gpu h200). Each step's stdout and stderr go to $OUT/<step>.log, each benchmark's JSON line to
# $OUT/<step>.json, and $OUT/summary.txt lists every step's exit status; a failing step does not stop the
# others, and the script exits non-zero if any failed.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh            on a CUDA machine (fails at once where torch sees none)
#   CPU=1 OUT=/tmp/gpu bash benchmarks/gpu_check.sh      the same steps on the CPU, at --quick sizes: a dry run
#                                                        that checks the script itself
# PYTHON (default: python) is the interpreter; GPU_PROFILE (default h200) the profile energy.py measures
# against; run from anywhere, the script works in the repository root.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder the results go to}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "${CPU:-0}" = 1 ]; then
    device=cpu
    tests=(tests/test_hwsim_conv.py)                       # the dry run: one test file, quick benchmark sizes
    scale_batches=(--quick --networks resnet20)
    test_set=(--samples 16 --steps 4 --block 8 --networks resnet20)
    vs_lava=(--quick --networks mlp)
    stop_memory=(--quick)
    energy=(--quick --no-measure)
    export CUDA_VISIBLE_DEVICES=""                         # the CPU run stays on the CPU even on a GPU machine
else
    device=cuda
    tests=(tests/test_hwsim.py tests/test_hwsim_conv.py tests/test_estimate.py tests/test_stop_deep.py)
    scale_batches=(--batches 4 64 256)
    test_set=(--samples 10000 --steps 32 --block 1000 --networks vgg11)
    vs_lava=()
    stop_memory=()
    energy=(--gpu "${GPU_PROFILE:-h200}")
fi

: > "$OUT/summary.txt"
failed=0
step() {  # step NAME COMMAND...: run it, keep its log and JSON line, record its status
    local name=$1; shift
    local start=$SECONDS
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    case $name in bench_*) tail -n 1 "$OUT/$name.log" > "$OUT/$name.json" ;; esac
    echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/summary.txt"
    [ $rc = 0 ] || failed=1
}

step environment "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"
if [ "$device" = cuda ]; then
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "torch sees no CUDA device: run with CPU=1 for the CPU dry run" | tee -a "$OUT/summary.txt"; exit 2; }
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
fi
step tests "$PYTHON" -m pytest -q -p no:cacheprovider "${tests[@]}"
step bench_hwsim_scale "$PYTHON" benchmarks/hwsim_scale.py --device "$device" "${scale_batches[@]}"
step bench_hwsim_scale_test_set "$PYTHON" benchmarks/hwsim_scale.py --device "$device" "${test_set[@]}"
step bench_hwsim_vs_lava "$PYTHON" benchmarks/hwsim_vs_lava.py --device "$device" "${vs_lava[@]}"
step bench_stop_memory "$PYTHON" benchmarks/stop_memory.py --device "$device" "${stop_memory[@]}"
step bench_energy "$PYTHON" benchmarks/energy.py "${energy[@]}"
exit $failed
