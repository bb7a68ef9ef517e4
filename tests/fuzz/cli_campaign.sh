#!/usr/bin/env bash
# The CLI campaign (docs/hardening.md): byte-mutated input files through the
# affinity CLI. For each target a tiny fixture is made once and its command
# run on the original (the reference result); then each case mutates one
# input file (tests/fuzz/cli/mutate.c: bit flips, byte sets, inserts,
# deletes, duplicated chunks, truncation; seeded, so case i is the same file
# on every machine), runs the command under `timeout`, and classifies it:
#   rejected  non-zero exit with a message naming an error
#   same      exit 0 and the same output bytes as the original
#   differs   exit 0 with other output (allowed for inputs that are not ours;
#             for a file of ours, an .h5 with our digest, it is a FAILURE)
#   unclear   non-zero exit without an error message (FAILURE)
#   crash     a signal, or a sanitizer report on stderr (FAILURE)
#   hang      killed by the timeout (FAILURE)
# Usage: tests/fuzz/cli_campaign.sh [-n CASES] [-s SEED] [-t TIMEOUT_S]
#          [-b AFFINITY_BINARY] [-w WORK_DIR] [-o LOG]
# Cases are spread over the targets by the weights below; CASES 10000 is the
# full campaign, CI runs 100 (.ci/fuzz.sh). Exit status 1 on any failure.
# A failing case is kept in WORK_DIR/failures/ with the command to replay it.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=100 SEED=1 TMO=20 AF=$ROOT/build/affinity WORK= LOG=
while getopts n:s:t:b:w:o: opt; do
  case $opt in
  n) N=$OPTARG ;; s) SEED=$OPTARG ;; t) TMO=$OPTARG ;; b) AF=$OPTARG ;; w) WORK=$OPTARG ;;
  o) LOG=$OPTARG ;; *) exit 2 ;;
  esac
done
[ -x "$AF" ] || { echo "cli_campaign: no affinity binary at $AF (build first, or -b)"; exit 2; }
WORK=${WORK:-$ROOT/build/cli-campaign}
rm -rf "$WORK" && mkdir -p "$WORK/fix" "$WORK/failures" || exit 2
LOG=${LOG:-$WORK/campaign.log}
: > "$LOG"
export OMP_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
cc -std=c11 -O2 -o "$WORK/mutate" tests/fuzz/cli/mutate.c || exit 2
F=$WORK/fix
q() { printf "'%s'" "$1"; }
die() { echo "cli_campaign: setup failed: $*"; exit 2; }

# ---- fixtures (tiny: every command well under a second) ----------------------
HF=$ROOT/tests/data/tiny_bert_a
"$AF" import-hf "$HF" --out "$F/model.h5" 2>/dev/null || die import-hf
. tests/fuzz/fixtures.sh
make_catalog "$F/products.csv" 60 5
make_orders "$F/orders.csv" 80 3
head -300 "$ROOT/../shared/datasets/groceries/groceries.csv" > "$F/baskets.csv" 2>/dev/null ||
  cp "$ROOT/tests/fuzz/corpus/baskets/groceries_head.txt" "$F/baskets.csv"
EMBED_ARGS="--id-column product_id --text-column product_name --threads 1"
"$AF" embed --model "$F/model.h5" --catalog "$F/products.csv" $EMBED_ARGS --out "$F/emb.h5" \
  2>/dev/null || die embed
TRAIN_ARGS="--catalog $F/products.csv --baskets $F/orders.csv --min-count 2 --max-val 10 --batch 4 --threads 1 --seed 7"
"$AF" train --model "$F/model.h5" $TRAIN_ARGS --steps 2 --save-every 1 --out "$F/train" \
  2>/dev/null || die train
CKPT=$(ls "$F"/train/step-*1.h5 | head -1)
[ -f "$CKPT" ] || die "no step-1 checkpoint in $F/train"
"$AF" run --catalog "$F/products.csv" --baskets "$F/orders.csv" --model "$F/model.h5" \
  --min-support 0.02 --threads 1 --out "$F/run" 2>/dev/null || die run
RUN_FILES=$(cd "$F/run" && ls | grep -Ev '\.(png|html)$|^manifest.json$' | sort)

# ---- targets: name weight "input files" command-template output ---------------
# In a command, @IN@ is the mutated file and @D@ the case's scratch folder.
targets=(import-hf embed-catalog embed-model rules score train-resume report)
declare -A weight=([import-hf]=15 [embed-catalog]=15 [embed-model]=10 [rules]=15 [score]=15
                   [train-resume]=10 [report]=20)
# files to mutate (one chosen per case), paths relative to $F or absolute
declare -A inputs=(
  [import-hf]="$HF/config.json $HF/model.safetensors $HF/vocab.txt $HF/tokenizer_config.json
               $ROOT/tests/data/tiny_bert_b/modules.json $ROOT/tests/data/tiny_bert_b/sentence_bert_config.json
               $ROOT/tests/data/tiny_bert_b/1_Pooling/config.json"
  [embed-catalog]="$F/products.csv" [embed-model]="$F/model.h5" [rules]="$F/baskets.csv"
  [score]="$F/emb.h5" [train-resume]="$CKPT"
  [report]="$(for x in $RUN_FILES; do printf '%s ' "$F/run/$x"; done)")

# Prepares @D@ for a case of target t whose mutated file replaces `orig`;
# prints the command line. The output path is always @D@/out*.
case_cmd() {
  local t=$1 orig=$2 in=$3 d=$4
  case $t in
  import-hf)
    mkdir -p "$d/hf/1_Pooling"
    cp -l "$HF"/* "$d/hf/" 2> /dev/null || cp "$HF"/* "$d/hf/" # links: only the mutated file is new
    if [[ $orig == */tiny_bert_b/* ]]; then # a sentence-transformers folder
      local rel=${orig#*/tiny_bert_b/}
      cp "$ROOT/tests/data/tiny_bert_b/modules.json" "$ROOT/tests/data/tiny_bert_b/sentence_bert_config.json" "$d/hf/"
      rm -f "$d/hf/$rel"
      sed 's/128/64/' "$ROOT/tests/data/tiny_bert_b/1_Pooling/config.json" > "$d/hf/1_Pooling/config.json"
      [ "$rel" = 1_Pooling/config.json ] && sed 's/128/64/' "$in" > "$d/hf/$rel" || cp "$in" "$d/hf/$rel"
    else
      rm -f "$d/hf/$(basename "$orig")" && cp "$in" "$d/hf/$(basename "$orig")"
    fi
    echo "$AF import-hf $(q "$d/hf") --out $(q "$d/out.h5")" ;;
  embed-catalog) echo "$AF embed --model $(q "$F/model.h5") --catalog $(q "$in") $EMBED_ARGS --out $(q "$d/out.h5")" ;;
  embed-model) echo "$AF embed --model $(q "$in") --catalog $(q "$F/products.csv") $EMBED_ARGS --out $(q "$d/out.h5")" ;;
  rules) echo "$AF rules --baskets $(q "$in") --baskets-format lines --min-support 0.02 --min-confidence 0.1 --out $(q "$d/out.csv")" ;;
  score) echo "$AF score --embeddings $(q "$in") --k 5 --threads 1 --out $(q "$d/out.h5")" ;;
  train-resume)
    mkdir -p "$d/train" && cp "$in" "$d/train/$(basename "$CKPT")"
    echo "$AF train $TRAIN_ARGS --steps 2 --resume $(q "$d/train/$(basename "$CKPT")") --out $(q "$d/train")" ;;
  report)
    mkdir -p "$d/run" && { cp -l "$F"/run/* "$d/run/" 2> /dev/null || cp "$F"/run/* "$d/run/"; }
    rm -f "$d/run/$(basename "$orig")" && cp "$in" "$d/run/$(basename "$orig")"
    echo "$AF report --run $(q "$d/run") --out $(q "$d/out.html")" ;;
  esac
}

# The case's result bytes: the output file (train: the final checkpoint).
result_of() {
  local t=$1 d=$2
  case $t in
  train-resume) cat "$d/train/final.h5" 2>/dev/null ;;
  report) sed -E 's/[0-9]+(\.[0-9]+)? s\b//g' "$d/out.html" 2>/dev/null ;; # drop timings
  *) cat "$d"/out* 2>/dev/null ;;
  esac
}

declare -A ref
for t in "${targets[@]}"; do # the reference result of each (target, input file)
  for orig in ${inputs[$t]}; do
    d=$WORK/ref && rm -rf "$d" && mkdir -p "$d"
    cmd=$(case_cmd "$t" "$orig" "$orig" "$d")
    bash -c "$cmd" > /dev/null 2> "$d/err" || { cat "$d/err"; die "reference $t $orig"; }
    ref[$t:$orig]=$(result_of "$t" "$d" | md5sum | cut -d' ' -f1)
  done
done

ours() { [ "$(head -c 8 "$1" | od -An -c | tr -d ' ')" = "211AFDGST\\n" ]; }
ours "$F/emb.h5" && ! ours "$F/products.csv" || die "digest magic not recognised"

# ---- the cases -------------------------------------------------------------------
declare -A count
total_w=0
for t in "${targets[@]}"; do total_w=$((total_w + weight[$t])); done
fail=0
t0=$SECONDS
for i in $(seq 0 $((N - 1))); do
  # target by weight (deterministic in i), then one of its input files
  r=$(((i * 7919 + SEED) % total_w)) acc=0
  for t in "${targets[@]}"; do acc=$((acc + weight[$t])); [ $r -lt $acc ] && break; done
  files=(${inputs[$t]})
  orig=${files[$((((i / 3) * 48271 + SEED) % 65521 % ${#files[@]}))]}
  d=$WORK/case && rm -rf "$d" && mkdir -p "$d"
  in=$d/$(basename "$orig")
  ops=$("$WORK/mutate" "$((SEED * 1000003 + i))" "$orig" "$in")
  cmd=$(case_cmd "$t" "$orig" "$in" "$d")
  timeout -s KILL "$TMO" bash -c "exec $cmd" > /dev/null 2> "$d/err"
  rc=$?
  if [ $rc -eq 137 ]; then
    class=hang
  elif [ $rc -gt 128 ] || grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|core dumped" "$d/err"; then
    class=crash
  elif [ $rc -ne 0 ]; then
    grep -qi "error" "$d/err" && class=rejected || class=unclear
  elif [ "$(result_of "$t" "$d" | md5sum | cut -d' ' -f1)" = "${ref[$t:$orig]}" ]; then
    class=same
  elif ours "$orig"; then
    class=differs-ours
  else
    class=differs
  fi
  count[$t:$class]=$((${count[$t:$class]:-0} + 1))
  printf '%d %s %s %s rc=%d %s| %s\n' "$i" "$t" "$(basename "$orig")" "$class" "$rc" "$ops" \
    "$(tail -c 200 "$d/err" | tr '\n' ' ')" >> "$LOG"
  case $class in
  hang | crash | unclear | differs-ours)
    fail=1
    k=$WORK/failures/$i-$t && mkdir -p "$k" && cp "$in" "$k/" && cp "$d/err" "$k/stderr"
    echo "$cmd" > "$k/command" ;;
  esac
done
secs=$((SECONDS - t0))

# ---- summary ---------------------------------------------------------------------
classes=(rejected same differs differs-ours unclear crash hang)
{
  printf '%-14s' target; for c in "${classes[@]}"; do printf '%13s' "$c"; done; printf '%8s\n' total
  for t in "${targets[@]}"; do
    printf '%-14s' "$t"; s=0
    for c in "${classes[@]}"; do v=${count[$t:$c]:-0}; s=$((s + v)); printf '%13d' "$v"; done
    printf '%8d\n' $s
  done
  printf '%-14s' all; s=0
  for c in "${classes[@]}"; do
    v=0; for t in "${targets[@]}"; do v=$((v + ${count[$t:$c]:-0})); done
    s=$((s + v)); printf '%13d' "$v"
  done
  printf '%8d\n' $s
  echo "$N cases (seed $SEED, timeout ${TMO}s, $AF) in ${secs}s; log $LOG"
} | tee "$WORK/summary.txt"
[ $fail -eq 0 ] || echo "cli_campaign: FAILURES kept in $WORK/failures/"
exit $fail
