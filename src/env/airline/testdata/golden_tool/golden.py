# Regenerates ../tau_bench_golden.json: runs every call sequence of cases.py through τ-bench's
# own airline tools (run_tau_bench.py) on tests/fixtures/airline/ and records the observations and the
# tables each sequence changed. τ-bench is exported, never committed:
#   git -C <tau-bench bare repo> archive HEAD tau_bench/envs/tool.py tau_bench/envs/airline/tools | tar x -C /tmp/tau
#   cp run_tau_bench.py /tmp/tau/ && python3 cases.py && python3 golden.py /tmp/tau > ../tau_bench_golden.json
import hashlib, json, os, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
tau_root = sys.argv[1]
fixture_path = os.path.join(here, "..", "..", "..", "..", "..", "tests", "fixtures", "airline")
fixture = {t: json.load(open(os.path.join(fixture_path, f"{t}.json"))) for t in ["flights", "reservations", "users"]}
cases = json.load(open(os.path.join(here, "cases.json")))
items = []
for tool, seqs in cases.items():
    seq_path = os.path.join(tau_root, "seqs.json")
    json.dump(seqs, open(seq_path, "w"))
    run = subprocess.run([sys.executable, os.path.join(tau_root, "run_tau_bench.py"), fixture_path, seq_path],
                         capture_output=True, text=True, check=True)
    rows = []
    for seq, line in zip(seqs, run.stdout.splitlines()):
        result = json.loads(line)
        if tool == "random":
            # Random sequences store digests of every observation and of the final database, to
            # keep the file small; a sequence where τ-bench returns None (send_certificate with
            # all ids taken) is left out, since there our tool returns its own error.
            if None in result["outputs"]:
                continue
            digest = lambda text: hashlib.sha256(text.encode()).hexdigest()
            rows.append(json.dumps({"calls": [{"name": n, "kwargs": k} for n, k in seq],
                                    "output_sha256": [digest(o) for o in result["outputs"]],
                                    "errors": [o.startswith("Error: ") for o in result["outputs"]],
                                    "data_sha256": digest(json.dumps(result["data"]))}))
            continue
        changed = {k: v for k, v in result["data"].items() if json.dumps(v) != json.dumps(fixture[k])}
        rows.append(json.dumps({"calls": [{"name": n, "kwargs": k} for n, k in seq],
                                "outputs": result["outputs"], "changed": changed}))
    items.append(json.dumps(tool) + ": [\n" + ",\n".join(rows) + "\n]")
print("{\n" + ",\n".join(items) + "\n}")
