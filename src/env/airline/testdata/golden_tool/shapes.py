# Writes ../tau_bench_parameter_shapes.json: τ-bench's airline tool names, in order, with their
# parameter schemas stripped of every "description" (names, types, enums, required lists and
# nesting only; the prose is τ-bench's and is not copied). Usage: python3 shapes.py /tmp/tau
import json, os, sys
sys.argv = [sys.argv[0], sys.argv[1]]
tau_root = sys.argv[1]
sys.path.insert(0, tau_root)
import importlib.util, types
pkg = types.ModuleType("tau_bench"); pkg.__path__ = []
envs = types.ModuleType("tau_bench.envs"); envs.__path__ = []
sys.modules["tau_bench"] = pkg; sys.modules["tau_bench.envs"] = envs
spec = importlib.util.spec_from_file_location("tau_bench.envs.tool", f"{tau_root}/tau_bench/envs/tool.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); sys.modules["tau_bench.envs.tool"] = m
apkg = types.ModuleType("tau_bench.envs.airline"); apkg.__path__ = [f"{tau_root}/tau_bench/envs/airline"]
sys.modules["tau_bench.envs.airline"] = apkg
spec = importlib.util.spec_from_file_location("tau_bench.envs.airline.tools", f"{tau_root}/tau_bench/envs/airline/tools/__init__.py",
                                              submodule_search_locations=[f"{tau_root}/tau_bench/envs/airline/tools"])
tools = importlib.util.module_from_spec(spec); sys.modules["tau_bench.envs.airline.tools"] = tools; spec.loader.exec_module(tools)
def strip(v):
    if isinstance(v, dict): return {k: strip(x) for k, x in v.items() if k != "description"}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
print(json.dumps([{"name": t.get_info()["function"]["name"], "parameters": strip(t.get_info()["function"]["parameters"])} for t in tools.ALL_TOOLS], indent=1))
