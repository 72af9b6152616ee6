#!/usr/bin/env bash
# The real workload, measured: Phase 2 (`apigen-mt trajectories`) on a fixed set of 8 retail
# blueprints (scripts/workload/retail-8.jsonl, on the generated world of seed 7), best-of-1,
# 6 agent turns, one attempt each, seed 0, with the default concurrency and with
# --concurrency 1, back to back; optionally also with the agent and user on an
# OpenAI-compatible server (SERVER=http://127.0.0.1:8080/v1, e.g. llama-server; TEMPLATE names
# the local model whose chat template renders the prompts).
#
#   scripts/bench-workload.sh MODEL [REPS]
#
# MODEL is anything --model takes (a .gguf, a folder, a preset). REPS (default 1) repeats the
# whole set, interleaved. For each run it prints wall time, generated tokens/s, prompt tokens/s
# processed (prompt tokens not served by the cache, per second), the prefix-cache share of
# prompt tokens, mean sequences per forward pass, and then the speed-up of the default over
# --concurrency 1, and of the server run over the default one. For in-process runs it also
# prints how much of the forward time went to passes that computed prompt tokens, the
# arithmetic rate (GFLOP/s) of those passes and of the rest, and the longest conversation's
# share of the generated tokens; from a --concurrency 1 run's split into prefill and decode it
# then prints batching's ceiling: the speed-up over that run if a pass decoding many sequences
# cost no more than a pass decoding one, while every prompt still costs what it costs alone and
# the longest conversation still decodes token by token. BIN overrides the binary (default
# target/release/apigen-mt). MODES picks the runs (default "default c1", plus "server" when
# SERVER is set), e.g. MODES="default server" for the side-by-side alone. "f32" and "f16" are
# the default run with that --kv-dtype, "c1-f32" and "c1-f16" the --concurrency 1 run with it.
# For a server run, the cache share and sequences per step are the server's own and are not
# printed; its requests and failures are.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/bench-workload.sh MODEL [REPS]}
reps=${2:-1}
bin=${BIN:-target/release/apigen-mt}
tasks=scripts/workload/retail-8.jsonl
work=$(mktemp -d)
# Kept when a run or a summary fails, so that a long run's stats.json is not lost with it.
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
[ -x "$bin" ] || cargo build --release --quiet

run() { # NAME EXTRA-ARGS...
    local name=$1; shift
    local out="$work/$name"
    rm -rf "$out"
    "$bin" trajectories --domain retail --seed 7 --blueprints "$tasks" --model "$model" \
        --attempts 1 --best-of 1 --max-turns 6 --out "$out" "$@" >/dev/null 2>"$work/$name.log" || {
        cat "$work/$name.log" >&2; exit 1; }
    python3 - "$out/stats.json" "$name" <<'EOF'
import json, os, sys
stats = json.load(open(sys.argv[1]))
t = stats["timing"]
wall = t["wall_seconds"]
# In-process engines carry the engine's metrics; a server's entry has its client's instead
# (requests, failures, latency), and the server's own cache and batching are not seen from here.
local = [e["metrics"] for e in t["engines"] if "metrics" in e]
servers = [e["server"] for e in t["engines"] if "server" in e]
prompt = sum(m["prompt_tokens"] for m in local)
hits = sum(m["prefix_hit_tokens"] for m in local)
steps = sum(m["steps"] for m in local)
seqs = sum(m["step_sequences"] for m in local)
gen = t["generated_tokens_per_second"] or 0.0
line = f"{sys.argv[2]:<14} wall {wall:7.1f} s  generated {gen:6.1f} tok/s"
if local:
    computed = (prompt - hits) / wall if wall else 0.0
    share = hits / prompt if prompt else 0.0
    batch = seqs / steps if steps else 0.0
    line += f"  prompt computed {computed:7.1f} tok/s  cache {share:5.1%}  seqs/step {batch:5.2f}"
for e in servers:
    line += f"  server {e.get('url')}: {e.get('requests')} requests, {e.get('failures')} failed, {e.get('prompt_tokens')} prompt tokens sent"
roles = " ".join(f"{r}={u['cache_share']:.2f}" for r, u in t.get("roles", {}).items() if u.get("cache_share") is not None)
print(f"{line}  [{roles}]")
summary = {"name": sys.argv[2], "wall": wall, "gen": gen}
# Builds from before the prefill split (BIN=...) lack it.
if local and all("prefill_time" in m for m in local):
    secs = lambda d: d["secs"] + d["nanos"] / 1e9
    forward = sum(secs(m["forward_time"]) for m in local)
    prefill = sum(secs(m["prefill_time"]) for m in local)
    # Each conversation's generated tokens, from its record: the longest one's share is the
    # part of the run no amount of batching can overlap with the others.
    out = os.path.dirname(sys.argv[1])
    written = []
    for name in ("trajectories.jsonl", "trajectories.rejected.jsonl"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            for record in map(json.loads, open(path)):
                written.append(sum(role["completion"] for role in record["tokens"].values()))
    share = max(written) / sum(written) if written and sum(written) else 0.0
    print(f"{'':<14} forward {forward:7.1f} s, of it prefill {prefill:6.1f} s in {sum(m['prefill_steps'] for m in local)} passes;"
          f" longest conversation {share:5.1%} of generated tokens")
    summary.update(forward=forward, prefill=prefill, share=share)
    # The arithmetic those passes did (builds before the count lack it), and its rate: set beside
    # the machine's peak, how much faster the same passes could be at all.
    if all("flops" in m for m in local):
        flops = sum(m["flops"] for m in local)
        pre = sum(m["prefill_flops"] for m in local)
        rate = lambda f, s: f / s / 1e9 if s else 0.0
        print(f"{'':<14} arithmetic {flops / 1e12:6.2f} TFLOP: {rate(flops, forward):5.1f} GFLOP/s in forward passes,"
              f" {rate(pre, prefill):5.1f} in prefill passes, {rate(flops - pre, forward - prefill):5.1f} in the others")
print(json.dumps(summary), file=open(sys.argv[1] + ".summary", "w"))
EOF
}

modes=${MODES:-default c1${SERVER:+ server}}
for rep in $(seq "$reps"); do
    echo "# repetition $rep ($(uptime | sed 's/.*load/load/'))"
    for mode in $modes; do
        case $mode in
            default) run "default-$rep" ;;
            c1) run "c1-$rep" --concurrency 1 ;;
            f32 | f16) run "$mode-$rep" --kv-dtype "$mode" ;;
            c1-f32 | c1-f16) run "$mode-$rep" --concurrency 1 --kv-dtype "${mode#c1-}" ;;
            server) run "server-$rep" --agent-model "${SERVER:?server mode needs SERVER=URL}" --user-model "$SERVER" \
                ${TEMPLATE:+--server-template "$TEMPLATE"} ;;
            *) echo "unknown mode $mode (default, c1, f32, f16, c1-f32, c1-f16, server)" >&2; exit 2 ;;
        esac
    done
done
python3 - "$work" "$reps" $modes <<'EOF'
import json, statistics, sys
work, reps, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def med(name):
    return statistics.median(json.load(open(f"{work}/{name}-{r}/stats.json.summary"))["gen"] for r in range(1, reps + 1))
gen = {m: med(m) for m in modes}
print("median generated tok/s: " + ", ".join(f"{m} {g:.1f}" for m, g in gen.items()))
for a, b in [("default", "c1"), ("default", "server"), ("f16", "c1-f16"), ("f32", "c1-f32"), ("f16", "f32"),
             ("f16", "default"), ("f32", "default")]:
    if a in gen and b in gen and gen[b]:
        print(f"{a} over {b}: {gen[a] / gen[b]:.2f}x")
# What batching could buy at best. A --concurrency 1 run's forward time splits into prefill P and
# decode D (no pass mixes them). Suppose a pass decoding many sequences cost no more than one
# decoding alone, and prompt passes cost what they cost alone: the default run would still
# compute every prompt (P) and decode the longest conversation token by token (D times its share
# of the generated tokens). Wall time outside forward passes is left out.
for c1 in [m for m in modes if m.startswith("c1")]:
    for r in range(1, reps + 1):
        s = json.load(open(f"{work}/{c1}-{r}/stats.json.summary"))
        if "prefill" in s and s["share"]:
            p, d = s["prefill"], s["forward"] - s["prefill"]
            print(f"{c1}-{r}: prefill {p:.1f} s, decode {d:.1f} s, longest conversation {s['share']:.1%}: "
                  f"batching's ceiling over it {(p + d) / (p + d * s['share']):.2f}x")
EOF
