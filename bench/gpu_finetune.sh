#!/usr/bin/env bash
# GPU fine-tune of a shipped model, as one command on a borrowed machine (16 cores, one GPU, no network).
#
# Prepare here (the repo root), once:
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/whl
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .gpu/whl ultralytics==8.4.190 ultralytics-thop==2.2.3 \
#     pydantic==2.14.4 pydantic_core==2.50.5 annotated-types typing-inspection
#   brightkitchen train synth --out data/synth-1 --images 60 --seed 1 --val-fraction 0
#   brightkitchen train weights-from-onnx --model models/bk-detector-0.6.0 --calibration data/synth-1 \
#     --out .gpu/start.pt
# Run there (carry .gpu), then export the returned last.pt here with `brightkitchen train export`:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl \
#     && PYTHONPATH=/tmp/site bash bench/gpu_finetune.sh
#
# Environment (defaults for a 16-core GPU machine and a 600 s command): N images per dataset, DEV, BATCH,
# WORKERS (loader processes per run), IMGSZ, END (seconds after the start by which the fits must end),
# SETUP (seconds of a fit outside its training loop), D and R (data and runs folders), OUT (results).
# Both runs start from .gpu/start.pt and differ only in lr0 (LR_A, LR_B).
set -u
N=${N:-1000} DEV=${DEV:-0} BATCH=${BATCH:-64} WORKERS=${WORKERS:-7} IMGSZ=${IMGSZ:-512}
END=${END:-555} SETUP=${SETUP:-80} D=${D:-/tmp/data} R=${R:-/tmp/runs} OUT=${OUT:-/tmp/out}
LR_A=${LR_A:-0.0005} LR_B=${LR_B:-0.001}
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*"; }
export PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 YOLO_OFFLINE=1
mkdir -p "$D" "$R" "$OUT/a" "$OUT/b"

say "rendering 4 scene and 12 clip-frame datasets of $N images"
for s in 51 52 53 54; do python3 bench/gpu_finetune.py render "$D/synth-$s" $s "$N" scene >"$OUT/gen-$s.log" 2>&1 & done
for s in $(seq 61 72); do python3 bench/gpu_finetune.py render "$D/clip-$s" $s "$N" clip >"$OUT/gen-$s.log" 2>&1 & done
wait
n=$(ls "$D"/*/data.yaml | wc -l)
if [ "$n" != 16 ]; then tail -n 30 "$OUT"/gen-*.log; exit 1; fi
rm -f "$OUT"/gen-*.log

limit=$((END - ($(date +%s) - T0)))
hours=$(python3 -c "print(round(max($limit - $SETUP, 10) / 3600, 4))")
say "rendered; each fit gets $limit s, $hours h of training"
data=$(ls -d "$D"/* | sed 's/.*/"&"/' | paste -sd,)
options() {
    echo "{\"data\": [$data], \"out\": \"$R/$1\", \"weights\": \".gpu/start.pt\", \"epochs\": 100,
      \"hours\": $hours, \"imgsz\": $IMGSZ, \"batch\": $BATCH, \"workers\": $WORKERS, \"device\": \"$DEV\",
      \"extra\": {\"nbs\": $BATCH, \"val\": false, \"plots\": false, \"optimizer\": \"AdamW\", \"lr0\": $2,
      \"warmup_epochs\": 0.3, \"warmup_bias_lr\": 0.0, \"rect\": true}}"
}
timeout "$limit" python3 bench/gpu_finetune.py fit "$(options a "$LR_A")" >"$OUT/a/fit.log" 2>&1 &
timeout "$limit" python3 bench/gpu_finetune.py fit "$(options b "$LR_B")" >"$OUT/b/fit.log" 2>&1 &
wait
say "trained"
for r in a b; do  # last.pt without the optimizer state (a run cut by the timeout still has it)
    python3 -c "import shutil; from ultralytics.utils.torch_utils import strip_optimizer as s
shutil.copy('$R/$r/weights/last.pt', '$OUT/$r/last.pt'); s('$OUT/$r/last.pt')" || echo "no weights for $r"
    cp "$R/$r/results.csv" "$R/$r/fit.json" "$OUT/$r/" 2>/dev/null
    grep -E "^epoch|Using|finished|Error" "$OUT/$r/fit.log" | tail -n 25
done
say "done"
