"""Where the live worker's CPU goes: what each step of a request costs under load, found by
taking the step away.

    .venv/bin/python -m bench.step_costs                       # N = 10k, every step, 3 rounds of 6 s
    .venv/bin/python -m bench.step_costs 100000 --steps lookup,event_log --rounds 5

The throughput figure's stack and load (functions-framework + gunicorn, Mongo logging on
nx-27017, 8 kept-alive connections) serves ours whole, then without one step at a time
(bench/without/main.py, bench/stand_ins.py: the step memoised by its input), in an order reversed
every round, and hello world once a round. A step's cost is the server CPU a request saves
without it. In-process profiles (bench.profile) miss what load adds: cache misses and
hand-offs between threads. Prints a table and writes bench/out/step-costs.json.
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.run import loaded_run, loaded_server, our_env, query_texts
from bench.servers import ROOT, text_path
from bench.stand_ins import STEPS
from bench.stores import ensure_store

OUT = ROOT / "bench" / "out" / "step-costs.json"
CONNECTIONS = 8


def measure(kind, env, paths, seconds, mongo_pid):
    """Requests/s and the CPU a request cost the server and the Mongo-wire server, in one run."""
    with loaded_server(kind, env, paths, CONNECTIONS) as server:  # every query: see bench/stand_ins
        run = loaded_run(server, paths, CONNECTIONS, seconds, [mongo_pid])
    if run["non_2xx_or_errors"]:  # a stand-in that broke requests would look cheap
        raise RuntimeError(f"{kind} {env.get('WITHOUT', '')}: {run['non_2xx_or_errors']} failed requests")
    return {"rps": run["rps"], "server_cpu_ms": run["server_cpu_ms_per_request"],
            "mongo_cpu_ms": run["mongo_cpu_ms_per_request"]}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.step_costs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, nargs="?", default=10_000, help="store size (a bench store, built on first use)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma list of: {', '.join(STEPS)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=6)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    steps = args.steps.split(",")
    unknown = set(steps) - set(STEPS)
    if unknown:
        p.error(f"unknown steps: {', '.join(sorted(unknown))}")
    from function.devserver import start_embedded_mongo, stop

    ensure_store(args.n)
    paths = [text_path(text) for text in query_texts(200)]
    served = ["whole"] + steps
    runs = {name: [] for name in ["hello"] + served}
    mongo_dir = Path(tempfile.mkdtemp(prefix="bench-mongo-", dir=ROOT / "bench" / "cache"))
    mongo, mongodb = start_embedded_mongo(mongo_dir)
    try:
        for round_ in range(args.rounds):
            runs["hello"].append(measure("hello", {}, ["/"], args.seconds, mongo.pid))
            for name in served if round_ % 2 == 0 else served[::-1]:
                env = our_env(args.n, mongodb, WITHOUT="" if name == "whole" else name)
                runs[name].append(measure("without", env, paths, args.seconds, mongo.pid))
                print(f"round {round_ + 1}: {name} {runs[name][-1]}", file=sys.stderr, flush=True)
    finally:
        stop(mongo)
        shutil.rmtree(mongo_dir, ignore_errors=True)

    medians = {name: {key: round(statistics.median(run[key] for run in figures), 3) for key in figures[0]}
               for name, figures in runs.items()}
    for name in steps:  # paired within each round: the machine's load drifts between rounds
        saved = sorted(whole["server_cpu_ms"] - run["server_cpu_ms"] for whole, run in zip(runs["whole"], runs[name]))
        medians[name]["saved_ms"] = round(statistics.median(saved), 3)
        medians[name]["saved_ms_range"] = [round(saved[0], 3), round(saved[-1], 3)]
    hello = medians["hello"]
    lines = [f"N={args.n}, {args.rounds} rounds of {args.seconds} s, {CONNECTIONS} connections (medians; saved: "
             "paired in each round, [lowest, highest])",
             "| served | req/s | server CPU ms/request | saved ms | Mongo CPU ms/request |", "|---|---|---|---|---|"]
    for name in ["hello"] + served:
        row = medians[name]
        label = name if name in ("hello", "whole") else f"without {name}"
        saved = f"{row['saved_ms']:.3f} [{row['saved_ms_range'][0]:.3f}, {row['saved_ms_range'][1]:.3f}]" \
            if "saved_ms" in row else ""
        lines.append(f"| {label} | {row['rps']:.0f} | {row['server_cpu_ms']:.3f} | {saved} | {row['mongo_cpu_ms']:.3f} |")
    lines.append(f"half of hello world's throughput needs ours at <= {2 * hello['server_cpu_ms']:.3f} ms a request "
                 f"(one worker, CPU-bound); whole: {medians['whole']['server_cpu_ms']:.3f}")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"n": args.n, "rounds": args.rounds, "seconds": args.seconds,
                                    "connections": CONNECTIONS, "medians": medians, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
