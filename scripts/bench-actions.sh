#!/usr/bin/env bash
# Sampled against drafted ground-truth actions, same settings and seed: a whole `run` (Phase 1,
# then Phase 2 on what validated) for `--actions sampled` and `--actions model`, back to back.
#
#   scripts/bench-actions.sh MODEL [ATTEMPTS] [SEED]
#
# MODEL is anything --model takes. ATTEMPTS (default 8) blueprint attempts per mode, with the
# README's quick-start settings otherwise (one reviewer, one round, best-of-1, 6 turns, one
# conversation per blueprint) and no recombination, so every attempt is a generated blueprint.
# For each mode it prints validated blueprints per attempt, tokens per validated blueprint, the
# pass rate of each stage (first drafts / final drafts), and the share of validated blueprints
# whose conversation verified. BIN overrides the binary (default target/release/apigen-mt);
# OUT=DIR keeps the run directories there; MODES picks the modes (default "sampled model").
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/bench-actions.sh MODEL [ATTEMPTS] [SEED]}
attempts=${2:-8}
seed=${3:-0}
bin=${BIN:-target/release/apigen-mt}
[ -x "$bin" ] || cargo build --release --quiet
work=${OUT:-$(mktemp -d)}
for mode in ${MODES:-sampled model}; do
    rm -rf "$work/$mode"
    start=$(date +%s)
    "$bin" run --domain retail --model "$model" --seed "$seed" --tasks "$attempts" --max-attempts "$attempts" \
        --reviewers 1 --rounds 1 --attempts 1 --best-of 1 --max-turns 6 --recombine 0 --actions "$mode" \
        --out "$work/$mode" >/dev/null 2>"$work/$mode.log" || { tail -20 "$work/$mode.log" >&2; exit 1; }
    python3 - "$work/$mode/stats.json" "$mode" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
b = s["blueprints"]
p = b["pass_rate"]
def rates(t):
    return " ".join(f"{k}={v['passed']}/{v['entered']}" for k, v in t.items() if v["entered"])
t = s.get("trajectories", {})
verified = t.get("verified", 0)
print(f"{sys.argv[2]:8} validated {b['validated']}/{b['attempted']}  tokens/validated {b.get('tokens_per_validated')}  "
      f"verified {verified}/{b['validated']}  wall {sys.argv[3]} s")
print(f"         first drafts: {rates(p['without_feedback'])}")
print(f"         final drafts: {rates(p['with_feedback'])}")
PY
done
