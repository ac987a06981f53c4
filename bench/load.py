"""Load from a second process: wrk when installed (apt-get install wrk), else a Python client.

Both keep connections alive, cycle through a list of request paths and report
requests/s and latency percentiles.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * UNITS[unit]


def run_wrk(base, paths, connections, seconds, threads=2):
    lua = "paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n" + (
        "i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('ERRORS %d %d %d\\n', summary.errors.status, summary.errors.connect,"
        " summary.errors.timeout))\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, base],
                         capture_output=True, text=True, check=True).stdout
    Path(f.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    errors = [int(x) for x in re.search(r"ERRORS (\d+) (\d+) (\d+)", out).groups()]
    return {"tool": "wrk", "rps": round(rps, 1), "p50_ms": round(percentiles[50], 2),
            "p99_ms": round(percentiles[99], 2), "non_2xx_or_errors": sum(errors) + _non2xx(out)}


def _non2xx(out):
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(found.group(1)) if found else 0


def run_python(base, paths, connections, seconds):
    """The fallback: a child process with ``connections`` threads, one kept-alive connection each."""
    code = f"""
import http.client, json, sys, threading, time
paths = json.loads(sys.stdin.read())
host, port = {base!r}.split("//")[1].split(":")
stop = time.perf_counter() + {seconds}
lat, errors = [], [0]
def worker(offset):
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    i = offset
    while time.perf_counter() < stop:
        t = time.perf_counter()
        conn.request("GET", paths[i % len(paths)]); r = conn.getresponse(); r.read()
        lat.append(time.perf_counter() - t)
        if r.status != 200: errors[0] += 1
        i += 1
started = time.perf_counter()
threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range({connections})]
[t.start() for t in threads]; [t.join() for t in threads]
lat.sort()
print(json.dumps({{"n": len(lat), "seconds": time.perf_counter() - started, "p50": lat[len(lat) // 2],
                  "p99": lat[int(len(lat) * 0.99)], "errors": errors[0]}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], input=json.dumps(paths), capture_output=True,
                                    text=True, check=True).stdout)
    return {"tool": "python", "rps": round(out["n"] / out["seconds"], 1), "p50_ms": round(out["p50"] * 1000, 2),
            "p99_ms": round(out["p99"] * 1000, 2), "non_2xx_or_errors": out["errors"]}


def run_load(base, paths, connections, seconds):
    if shutil.which("wrk"):
        return run_wrk(base, paths, connections, seconds)
    return run_python(base, paths, connections, seconds)


def warm(base, paths, connections=8, fresh_connections=False):
    """Send every path once, ``connections`` at a time; ``fresh_connections``: one TCP connection
    per request, so that gunicorn's workers take turns accepting (kept-alive connections all
    stay with whichever worker accepted them first)."""
    import http.client

    host, port = base.split("//")[1].split(":")
    queue = list(paths)
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            conn.request("GET", path, headers={"Connection": "close"} if fresh_connections else {})
            conn.getresponse().read()
            if fresh_connections:
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.2)
