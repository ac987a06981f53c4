"""What one worker's threads cost a request through gunicorn, at 1, 2 and 8 connections, for ours
and hello world: is the gap the app's own work or the hand-offs between threads under load?

    .venv/bin/python -m bench.thread_costs                  # N = 5,000 (a bench store), 8 s a run
    .venv/bin/python -m bench.thread_costs 10000 --connections 1,8 --seconds 6

The throughput figure's stack and load (bench.run.loaded_server, bench.load; Mongo logging on
nx-27017). The CPU of each thread of the worker comes from /proc/PID/task/TID/stat, so the request
threads, gunicorn's main thread and the event writer are told apart. Prints a table.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from bench import load
from bench.procmem import context_switches, cpu_ticks
from bench.run import loaded_server, our_env, query_texts
from bench.servers import ROOT, text_path
from bench.stores import ensure_store

TICK = os.sysconf("SC_CLK_TCK")


def tasks(pid):
    """The /proc folders of the threads of ``pid``, by thread id."""
    return {int(task.name): task for task in Path(f"/proc/{pid}/task").iterdir()}


def thread_ticks(pid):
    """{thread id: CPU clock ticks so far} of every thread of ``pid``."""
    return {tid: cpu_ticks(task / "stat") for tid, task in tasks(pid).items()}


def switches(pid):
    """Voluntary and involuntary context switches so far, summed over the threads of ``pid``."""
    counts = [context_switches(task / "status") for task in tasks(pid).values()]
    return [sum(count[0] for count in counts), sum(count[1] for count in counts)]


def measure(kind, env, paths, connections, seconds):
    """One load run on a new server: requests/s and the CPU ms a request of the worker's threads."""
    with loaded_server(kind, env, paths, connections) as server:
        worker = max(server.pids())  # gunicorn's one worker, forked after its master
        ticks, switched_before = thread_ticks(worker), switches(worker)
        run = load.run_load(server.base, paths, connections, seconds)
        after, switched = thread_ticks(worker), switches(worker)
    requests = max(1, run["rps"] * seconds)
    per_thread = sorted(((after[tid] - ticks.get(tid, 0)) * 1000 / TICK / requests for tid in after), reverse=True)
    return {"rps": run["rps"], "worker_ms": round(sum(per_thread), 3),
            "threads_ms": [round(ms, 3) for ms in per_thread if ms > 0],
            "switches": [round((b - a) / requests, 1) for a, b in zip(switched_before, switched)]}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.thread_costs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, nargs="?", default=5_000, help="store size (a bench store, built on first use)")
    p.add_argument("--connections", default="1,2,8", help="comma list of connection counts")
    p.add_argument("--seconds", type=int, default=8)
    args = p.parse_args(argv)
    from function.devserver import start_embedded_mongo, stop

    ensure_store(args.n)
    texts = [text_path(text) for text in query_texts(200)]
    mongo_dir = Path(tempfile.mkdtemp(prefix="bench-mongo-", dir=ROOT / "bench" / "cache"))
    mongo, mongodb = start_embedded_mongo(mongo_dir)
    try:
        print("| connections | handler | requests/s | worker CPU ms/req | of it by thread, ms | "
              "context switches/req (voluntary, not) |")
        print("|---|---|---|---|---|---|")
        for connections in [int(c) for c in args.connections.split(",")]:
            for kind, env, paths in (("ours", our_env(args.n, mongodb), texts), ("hello", {}, ["/"])):
                m = measure(kind, env, paths, connections, args.seconds)
                print(f"| {connections} | {kind} | {m['rps']} | {m['worker_ms']} | "
                      f"{', '.join(map(str, m['threads_ms']))} | {m['switches'][0]}, {m['switches'][1]} |", flush=True)
    finally:
        stop(mongo)
        shutil.rmtree(mongo_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
