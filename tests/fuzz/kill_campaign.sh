#!/usr/bin/env bash
# kill -9 campaign (docs/hardening.md): each of embed, score, rules, train and
# run is run to completion twice in one output folder (files that differ
# between two complete runs are "volatile": run.json, manifest.json,
# log.jsonl; every .h5 is byte-reproducible), then started KILLS times
# (default 20) and sent SIGKILL after a random delay in [0, 1.2 x its
# duration) (bash RANDOM seeded with SEED: reproducible). After every kill:
#   - every file of the folder before the kill is still there, and each
#     non-volatile one is byte for byte what it was (a rerun of the same
#     command writes the same bytes, so "intact" covers a rename that landed);
#   - every volatile .json/.jsonl file parses (python3, when present);
#   - any other new file is a temporary (*.tmp.<pid>) of the killed process.
# Finally one more complete run must leave no temporary behind (stale ones are
# removed). Prints per command: kills, kills that landed before completion,
# intact, violations. Exit 1 on any violation.
#   tests/fuzz/kill_campaign.sh [-k KILLS] [-s SEED] [-b AFFINITY] [-w WORK]
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD KILLS=20 SEED=1 AF=$ROOT/build/affinity WORK=
while getopts k:s:b:w: opt; do
  case $opt in k) KILLS=$OPTARG ;; s) SEED=$OPTARG ;; b) AF=$OPTARG ;; w) WORK=$OPTARG ;; *) exit 2 ;; esac
done
WORK=${WORK:-$ROOT/build/kill-campaign}
rm -rf "$WORK" && mkdir -p "$WORK/fix" || exit 2
export OMP_NUM_THREADS=2
RANDOM=$SEED
F=$WORK/fix
die() { echo "kill_campaign: $*"; exit 2; }
"$AF" import-hf "$ROOT/tests/data/tiny_bert_a" --out "$F/model.h5" 2>/dev/null || die import-hf
. tests/fuzz/fixtures.sh
make_catalog "$F/products.csv" 300 0
make_orders "$F/orders.csv" 200 4
G=$ROOT/../shared/datasets/groceries/groceries.csv
[ -f "$G" ] || G=$ROOT/tests/fuzz/corpus/baskets/groceries_head.txt

declare -A cmd=(
  [embed]="$AF embed --model $F/model.h5 --catalog $F/products.csv --id-column product_id --text-column product_name --out $WORK/embed/emb.h5"
  [score]="$AF score --embeddings $WORK/embed/emb.h5 --k 10 --out $WORK/score/nbr.h5"
  [rules]="$AF rules --baskets $G --baskets-format lines --min-support 0.003 --min-confidence 0.05 --out $WORK/rules/rules.csv"
  [train]="$AF train --model $F/model.h5 --catalog $F/products.csv --baskets $F/orders.csv --min-count 2 --max-val 20 --batch 8 --steps 6 --save-every 2 --seed 7 --out $WORK/train"
  [run]="$AF run --catalog $F/products.csv --baskets $F/orders.csv --model $F/model.h5 --min-support 0.01 --force --out $WORK/run"
)
order=(embed score rules train run)
snap() { (cd "$1" && for f in $(ls -A | sort); do printf '%s %s\n' "$f" "$(md5sum < "$f" | cut -c1-32)"; done); }
json_ok() {
  command -v python3 > /dev/null || return 0
  python3 - "$1" << 'PY'
import json, sys
p = sys.argv[1]
text = open(p, encoding="utf-8").read()
if p.endswith(".jsonl"):
    [json.loads(l) for l in text.splitlines() if l.strip()]
else:
    json.loads(text)
PY
}
fail=0
printf '%-6s %6s %8s %7s %10s %8s\n' command kills landed intact violations "run s"
# landed: killed before it completed (exit 137); the others finished first
for c in "${order[@]}"; do
  d=$WORK/$c && mkdir -p "$d"
  bash -c "${cmd[$c]}" > /dev/null 2> "$WORK/$c.err" || { cat "$WORK/$c.err"; die "$c failed"; }
  snap "$d" > "$WORK/$c.1"
  t0=$(date +%s%N) # the duration of the second (warm) run sets the delays
  bash -c "${cmd[$c]}" > /dev/null 2> "$WORK/$c.err" || die "$c failed (second run)"
  ms=$((($(date +%s%N) - t0) / 1000000))
  snap "$d" > "$WORK/$c.2"
  volatile=$(diff "$WORK/$c.1" "$WORK/$c.2" | awk '/^[<>]/{print $2}' | sort -u)
  landed=0 intact=0 bad=0
  for k in $(seq 1 "$KILLS"); do
    before=$WORK/$c.before && snap "$d" > "$before"
    delay=$((RANDOM * RANDOM % (ms * 12 / 10 + 1)))
    bash -c "exec ${cmd[$c]}" > /dev/null 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 $pid 2> /dev/null
    wait $pid 2> /dev/null
    rc=$?
    [ $rc -eq 137 ] && landed=$((landed + 1))
    ok=1 why=
    while read -r f sum; do
      [[ $f == *.tmp.* ]] && continue # a killed run's temporary: the next run may remove it
      now=$([ -f "$d/$f" ] && md5sum < "$d/$f" | cut -c1-32)
      if [ -z "$now" ]; then ok=0 why+="$f disappeared; "
      elif grep -qx "$f" <<< "$volatile"; then
        case $f in *.json | *.jsonl) json_ok "$d/$f" 2> /dev/null || { ok=0 why+="$f unparsable; "; } ;; esac
      elif [ "$now" != "$sum" ]; then ok=0 why+="$f changed; "
      fi
    done < "$before"
    for f in $(ls -A "$d"); do
      grep -q "^$f " "$before" && continue
      [[ $f == *.tmp.$pid ]] || { ok=0 why+="new file $f; "; }
    done
    if [ $ok -eq 1 ]; then intact=$((intact + 1)); else
      bad=$((bad + 1)) fail=1
      echo "  $c kill $k at ${delay} ms (rc $rc): $why"
    fi
  done
  bash -c "${cmd[$c]}" > /dev/null 2> "$WORK/$c.err" || die "$c failed after the kills"
  left=$(ls -A "$d" | grep -c '\.tmp\.' || true)
  [ "$left" -eq 0 ] || { bad=$((bad + 1)) fail=1; echo "  $c: $left temporaries left after a complete run"; }
  printf '%-6s %6d %8d %7d %10d %8.1f  volatile: %s\n' "$c" "$KILLS" "$landed" "$intact" "$bad" \
    "$(awk "BEGIN{print $ms / 1000}")" "$(echo $volatile)"
done
exit $fail
