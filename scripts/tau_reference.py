#!/usr/bin/env python3
"""Run τ-bench's own retail tools on our fixture, to record the exact outputs our Rust port must match.

Contains no τ-bench code: it imports the tool modules from a τ-bench checkout given on the
command line (e.g. one exported with `git archive`), with a stand-in for their `Tool` base class.

usage: tau_reference.py TAU_BENCH_DIR DATA_DIR SCENARIOS_JSON > expected.json

SCENARIOS_JSON is a list of {"name": ..., "actions": [{"name": ..., "kwargs": {...}}, ...]}.
Each scenario starts from freshly loaded data. The output is a list of
{"name": ..., "outputs": [str, ...], "data": json.dumps(final data)}, where an action that
raises gets "Error: <message>" as τ-bench's environment would report it.
"""

import importlib.util
import json
import os
import sys
import types


def load_tools(tau_dir):
    # The tool modules only need `tau_bench.envs.tool.Tool` as a base class.
    tool_module = types.ModuleType("tau_bench.envs.tool")

    class Tool:
        pass

    tool_module.Tool = Tool
    for name in ("tau_bench", "tau_bench.envs"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["tau_bench.envs.tool"] = tool_module

    tools_dir = os.path.join(tau_dir, "tau_bench", "envs", "retail", "tools")
    tools = {}
    for file in sorted(os.listdir(tools_dir)):
        if not file.endswith(".py") or file == "__init__.py":
            continue
        spec = importlib.util.spec_from_file_location(f"retail_tools.{file[:-3]}", os.path.join(tools_dir, file))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Tool) and value is not Tool:
                tools[value.get_info()["function"]["name"]] = value
    return tools


def load_data(data_dir):
    # Table order as τ-bench's retail loader builds it.
    data = {}
    for table in ("orders", "products", "users"):
        with open(os.path.join(data_dir, f"{table}.json")) as f:
            data[table] = json.load(f)
    return data


def main():
    tau_dir, data_dir, scenarios_path = sys.argv[1:4]
    tools = load_tools(tau_dir)
    with open(scenarios_path) as f:
        scenarios = json.load(f)
    results = []
    for scenario in scenarios:
        data = load_data(data_dir)
        outputs = []
        for action in scenario["actions"]:
            try:
                outputs.append(tools[action["name"]].invoke(data=data, **action["kwargs"]))
            except Exception as e:  # noqa: BLE001 - mirrors τ-bench's environment
                outputs.append(f"Error: {e}")
        results.append({"name": scenario["name"], "outputs": outputs, "data": json.dumps(data)})
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
