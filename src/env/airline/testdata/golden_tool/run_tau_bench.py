# Runs tau-bench airline tools on our fixture, as Env.step would (exceptions -> "Error: {e}").
import json, sys, types, importlib.util, copy, os
root = os.path.dirname(__file__)
pkg = types.ModuleType("tau_bench"); pkg.__path__ = []
envs = types.ModuleType("tau_bench.envs"); envs.__path__ = []
sys.modules["tau_bench"] = pkg; sys.modules["tau_bench.envs"] = envs
spec = importlib.util.spec_from_file_location("tau_bench.envs.tool", f"{root}/tau_bench/envs/tool.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); sys.modules["tau_bench.envs.tool"] = m
tools = {}
d = f"{root}/tau_bench/envs/airline/tools"
for f in sorted(os.listdir(d)):
    if f.endswith(".py") and f != "__init__.py":
        spec = importlib.util.spec_from_file_location(f[:-3], f"{d}/{f}")
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        for v in vars(mod).values():
            if isinstance(v, type) and hasattr(v, "get_info") and v.__module__ == f[:-3]:
                tools[v.get_info()["function"]["name"]] = v
# The fixture directory holds one file per table, loaded in τ-bench's order.
fixture = {t: json.load(open(os.path.join(sys.argv[1], f"{t}.json"))) for t in ["flights", "reservations", "users"]}
# argv: the fixture directory, a JSON list of call sequences ([name, kwargs] pairs); each sequence runs on a fresh copy.
for seq in json.load(open(sys.argv[2])):
    data = copy.deepcopy(fixture)
    outs = []
    for name, kwargs in seq:
        try:
            obs = tools[name].invoke(data=data, **kwargs)
        except Exception as e:
            obs = f"Error: {e}"
        outs.append(obs)
    print(json.dumps({"outputs": outs, "data": data}))
