#!/usr/bin/env python3
"""Export τ-bench's tasks as apigen-mt tasks (one JSON object per line), for `apigen-mt eval`.

Contains no τ-bench code: it reads the task list from a τ-bench checkout given on the command
line (e.g. one exported with `git archive`), with stand-ins for its `Task` and `Action` types.

usage: tau_tasks.py TAU_BENCH_DIR retail|airline [test|dev|train] > tasks.jsonl

Each line is {"id": "tau-DOMAIN-SPLIT-N", "instruction", "actions": [{"name", "kwargs"}],
"outputs", "user_id"}. Run them on τ-bench's own data:
    apigen-mt eval --domain retail --data-dir TAU_BENCH_DIR/tau_bench/envs/retail/data \\
        --blueprints tasks.jsonl --agent-model M --trials 4 --out runs/eval
(τ-bench's retail data holds one JSON file per table, as --data-dir expects.)
"""

import json
import os
import sys
import types


class _Record:
    """Keeps the keyword arguments τ-bench's pydantic models are built with."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def load_tasks(tau_dir, domain, split):
    types_module = types.ModuleType("tau_bench.types")
    types_module.Task = type("Task", (_Record,), {})
    types_module.Action = type("Action", (_Record,), {})
    sys.modules.setdefault("tau_bench", types.ModuleType("tau_bench"))
    sys.modules["tau_bench.types"] = types_module
    path = os.path.join(tau_dir, "tau_bench", "envs", domain, f"tasks_{split}.py")
    if not os.path.exists(path):
        sys.exit(f"error: {path} does not exist (is {tau_dir} a τ-bench checkout, and {split} a split of {domain}?)")
    namespace = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), namespace)
    lists = [v for k, v in namespace.items() if k.startswith("TASKS") and isinstance(v, list)]
    if len(lists) != 1:
        sys.exit(f"error: {path} defines {len(lists)} TASKS lists, expected one")
    return lists[0]


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[2] not in ("retail", "airline"):
        sys.exit(__doc__)
    tau_dir, domain = sys.argv[1], sys.argv[2]
    split = sys.argv[3] if len(sys.argv) == 4 else "test"
    for i, task in enumerate(load_tasks(tau_dir, domain, split)):
        line = {
            "id": f"tau-{domain}-{split}-{i}",
            "instruction": task.instruction,
            "actions": [{"name": a.name, "kwargs": a.kwargs} for a in task.actions],
            "outputs": list(getattr(task, "outputs", []) or []),
            "user_id": task.user_id,
        }
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
