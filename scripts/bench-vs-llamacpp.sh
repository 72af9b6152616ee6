#!/usr/bin/env bash
# Runs apigen-mt's `bench` and llama.cpp's llama-bench / llama-batched-bench on the same GGUF,
# the same shapes and the same thread count, interleaved, and prints medians and ratios.
#
#   scripts/bench-vs-llamacpp.sh LLAMA_BIN_DIR [MODEL_DIR_OR_GGUF | random:PRESET]
#
# LLAMA_BIN_DIR holds llama-bench and llama-batched-bench (a llama.cpp build; see BENCHMARKS.md
# for how it was built). MODEL defaults to ../shared/models/smollm2-135m-instruct. With
# random:PRESET (e.g. random:llama-3.2-1b-instruct), ours runs `bench --random-weights PRESET` and
# llama.cpp the same weights, written to a temporary GGUF by `bench --save-gguf`. Settings, from
# the environment:
#   REPS=3        repetitions of every measurement (interleaved: ours, theirs, ours, ...)
#   THREADS=2     threads for both engines
#   P=128 G=64    prompt and generated tokens of the prefill / decode rows
#   LONG=4000     also the long-context rows: prefill of LONG tokens, and decode at depth LONG
#                 (llama-bench -d LONG); 0 skips them
#   C=16          concurrency of the batched decode row; 0 skips it
#   WORKLOAD=1    also run the workload row: C sequences sharing a SHARED-token prompt, each then
#   SHARED=4500   generating OWN tokens (llama-batched-bench -pps); 0 skips it
#   OWN=500
#   APIGEN=target/release/apigen-mt
#   OURS_ARGS=    extra arguments for every `bench` run of ours (e.g. --kv-dtype f32)
# The load average (`uptime`) before each repetition is printed with the results.
set -euo pipefail

if [[ $# -lt 1 || ! -x "$1/llama-bench" || ! -x "$1/llama-batched-bench" ]]; then
    echo "usage: $0 LLAMA_BIN_DIR [MODEL]  (LLAMA_BIN_DIR must hold llama-bench and llama-batched-bench)" >&2
    exit 2
fi
LLAMA=$1
MODEL=${2:-../shared/models/smollm2-135m-instruct}
REPS=${REPS:-3} THREADS=${THREADS:-2} P=${P:-128} G=${G:-64} C=${C:-16}
WORKLOAD=${WORKLOAD:-1} SHARED=${SHARED:-4500} OWN=${OWN:-500} LONG=${LONG:-4000}
read -r -a EXTRA <<< "${OURS_ARGS:-}"
APIGEN=${APIGEN:-target/release/apigen-mt}
[[ -x $APIGEN ]] || { echo "error: $APIGEN is missing; run cargo build --release first" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export RAYON_NUM_THREADS=$THREADS

if [[ $MODEL == random:* ]]; then
    SOURCE=(--random-weights "${MODEL#random:}")
    GGUF=$OUT/random.gguf
    "$APIGEN" bench "${SOURCE[@]}" --save-gguf "$GGUF"
else
    SOURCE=(--model "$MODEL")
    if [[ -d $MODEL ]]; then
        GGUF=$(ls "$MODEL"/*.gguf | head -n 1)
    else
        GGUF=$MODEL
    fi
fi
[[ -f $GGUF ]] || { echo "error: no GGUF file at $MODEL" >&2; exit 2; }

ours() { # name, bench arguments...
    local name=$1; shift
    "$APIGEN" bench "${SOURCE[@]}" --json "${EXTRA[@]}" "$@" >> "$OUT/ours-$name.jsonl"
}

for rep in $(seq "$REPS"); do
    echo "repetition $rep of $REPS" >&2
    echo "repetition $rep: $(uptime)" >> "$OUT/load.txt"
    ours single --concurrency 1 --prompt-tokens "$P" --gen-tokens "$G"
    "$LLAMA/llama-bench" -m "$GGUF" -t "$THREADS" -p "$P" -n "$G" -r 1 -o jsonl >> "$OUT/llama-bench.jsonl" 2>/dev/null
    if [[ $LONG != 0 ]]; then
        ours long --concurrency 1 --prompt-tokens "$LONG" --gen-tokens "$G"
        "$LLAMA/llama-bench" -m "$GGUF" -t "$THREADS" -p "$LONG" -n 0 -r 1 -o jsonl >> "$OUT/llama-long.jsonl" 2>/dev/null
        "$LLAMA/llama-bench" -m "$GGUF" -t "$THREADS" -p 0 -n "$G" -d "$LONG" -r 1 -o jsonl >> "$OUT/llama-long.jsonl" 2>/dev/null
    fi
    if [[ $C != 0 ]]; then
        ours batched --concurrency "$C" --prompt-tokens "$P" --gen-tokens "$G"
        "$LLAMA/llama-batched-bench" -m "$GGUF" -t "$THREADS" -tb "$THREADS" -c $((C * (P + G) + 64)) \
            -npp "$P" -ntg "$G" -npl "$C" --output-format jsonl 2>/dev/null | grep '^{' >> "$OUT/llama-batched.jsonl"
    fi
    if [[ $WORKLOAD != 0 && $C != 0 ]]; then
        # Our bench gives every prompt at least one token of its own after the shared prefix.
        ours workload --concurrency "$C" --prompt-tokens $((SHARED + 1)) --shared-prefix "$SHARED" --gen-tokens "$OWN"
        "$LLAMA/llama-batched-bench" -m "$GGUF" -t "$THREADS" -tb "$THREADS" -c $((SHARED + C * OWN + 64)) \
            -kvu -pps -npp "$SHARED" -ntg "$OWN" -npl "$C" --output-format jsonl 2>/dev/null | grep '^{' >> "$OUT/llama-workload.jsonl"
    fi
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rows(name):
    path = out / name
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
def med(xs):
    return statistics.median(xs)
ours_single = rows("ours-single.jsonl")
bench = rows("llama-bench.jsonl")
pp = [r["avg_ts"] for r in bench if r["n_gen"] == 0]
tg = [r["avg_ts"] for r in bench if r["n_prompt"] == 0]
p = ours_single[0]["prompt_tokens"]
table = [
    (f"prefill, P = {p}, 1 sequence", [r["prefill_tok_s"] for r in ours_single], pp),
    ("decode, 1 sequence", [r["decode_tok_s"] for r in ours_single], tg),
]
if rows("ours-long.jsonl"):
    ours_long, theirs_long = rows("ours-long.jsonl"), rows("llama-long.jsonl")
    long = ours_long[0]["prompt_tokens"]
    table.append((f"prefill, P = {long}, 1 sequence", [r["prefill_tok_s"] for r in ours_long],
                  [r["avg_ts"] for r in theirs_long if r["n_gen"] == 0]))
    table.append((f"decode at depth {long}, 1 sequence", [r["decode_tok_s"] for r in ours_long],
                  [r["avg_ts"] for r in theirs_long if r["n_prompt"] == 0 and r.get("n_depth") == long]))
if rows("ours-batched.jsonl"):
    table.append(("decode, batched", [r["decode_tok_s"] for r in rows("ours-batched.jsonl")],
                  [r["speed_tg"] for r in rows("llama-batched.jsonl")]))
if rows("ours-workload.jsonl"):
    ours_w, theirs_w = rows("ours-workload.jsonl"), rows("llama-workload.jsonl")
    # llama-batched-bench -pps counts the shared prompt once: (pp + pl·tg) / total time; ours
    # likewise counts the shared prefix once, and each prompt's own token.
    def total(r):
        c, s = r["concurrency"], r["shared_prefix"]
        return (s + c * (r["prompt_tokens"] - s) + c * r["gen_tokens"]) / (r["prefill_s"] + r["decode_s"])
    table.append(("workload, shared prompt (total tok/s)", [total(r) for r in ours_w], [r["speed"] for r in theirs_w]))
print((out / "load.txt").read_text(), end="")
print(f"{'measure':40} {'apigen-mt':>10} {'llama.cpp':>10} {'ratio':>7}   (medians, tokens/s; then every run)")
for name, a, b in table:
    print(f"{name:40} {med(a):10.1f} {med(b):10.1f} {med(a) / med(b):7.2f}   "
          f"ours {' '.join(f'{x:.1f}' for x in a)} | llama.cpp {' '.join(f'{x:.1f}' for x in b)}")
EOF
