"""Outside-in check of the container image (`make container-test`).

    .venv/bin/python tests/container/check.py --image localhost/related-content

Runs the image the way a platform does, on a random PORT, and checks it from
the outside with nothing but HTTP, the Mongo-wire server and the container
engine:

  1. production-like: MONGODB (an nx-27017 started here, on loopback),
     CLICK_SECRET, WORKERS=2: /healthz is up and sees Mongo; a text query and
     a JSON POST answer; bad input gets a JSON 400; a click link redirects to
     the article; both events reach Mongo; every process in the container is
     non-root and cannot write to the code or the store; SIGTERM stops it with
     exit status 0 within Heroku's 30 s grace, no event lost;
  2. laptop-like: PORT only: it still answers, and says once at start that
     events are not stored and that click links use a random key.

Not a pytest module (it needs a container engine and a built image); every
failed check ends it with a message and a non-zero status, after removing
the containers and the nx-27017 it started. Prints what it measured.
"""

import argparse
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pymongo
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from function.devserver import free_port, start_embedded_mongo, stop  # noqa: E402

# How CI runs podman: as root, no Docker engine, no image registry (README).
DEFAULT_ENGINE = "podman --storage-driver=vfs --runtime runc --cgroup-manager=cgroupfs"
# Host network: the container reaches nx-27017 on loopback, and listens on the
# PORT it is given (a port mapping would hide whether PORT is honoured).
DEFAULT_RUN_FLAGS = "--network=host --ulimit nofile=10000:10000 --ulimit nproc=1000:1000"
GRACE_SECONDS = 30  # Heroku sends SIGKILL this long after SIGTERM
READY_SECONDS = 180  # container creation with the vfs driver copies the whole image
QUERY = "moon landing astronaut"


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def passed(message):
    print(f"  ok   {message}", flush=True)


class Container:
    """One `ENGINE run` of the image in the foreground, its output in a file."""

    def __init__(self, engine, run_flags, image, env, workdir, label):
        self.engine = engine
        self.name = f"related-check-{label}-{uuid.uuid4().hex[:8]}"
        self.port = int(env["PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(workdir) / f"{label}.log"
        env_flags = [flag for name, value in env.items() for flag in ("-e", f"{name}={value}")]
        command = [*engine, "run", "--name", self.name, *run_flags, *env_flags, image]
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.started_wall = datetime.now(timezone.utc)
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def engine_run(self, *args, check_status=True):
        result = subprocess.run([*self.engine, *args], capture_output=True, text=True, timeout=60)
        if check_status and result.returncode != 0:
            raise CheckFailed(f"`{' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def exec(self, *command):
        return self.engine_run("exec", self.name, *command, check_status=False)

    def state_time(self, field):
        """The engine's record of when the container's process started (after its filesystem was
        made: StartedAt) or ended (FinishedAt), in epoch seconds; None if unreadable."""
        raw = self.engine_run("inspect", "--format", "{{.State.%s}}" % field, self.name,
                              check_status=False).stdout.strip()
        # podman: "2026-11-26 09:43:23.123456789 +0000 UTC"; docker: "2026-11-26T09:43:23.123456789Z"
        match = re.match(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?", raw)
        if not match:
            return None
        date, clock, fraction, offset = match.groups()
        offset = "+0000" if offset in (None, "Z") else offset.replace(":", "")
        stamp = datetime.strptime(f"{date} {clock}.{(fraction or '0')[:6]} {offset}", "%Y-%m-%d %H:%M:%S.%f %z")
        return stamp.timestamp()

    def wait_ready(self):
        """Seconds from `run` to the first 200 of /healthz."""
        deadline = self.started + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"the container exited with status {self.process.returncode} before answering")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise CheckFailed(f"no 200 from /healthz on port {self.port} within {READY_SECONDS} s")

    def terminate(self):
        """SIGTERM as a platform sends it: (seconds until `run` returned, seconds until the process
        ended by the engine's clock or None, exit status); (None, None, None) past the grace."""
        sent = time.time()
        started = time.monotonic()
        self.engine_run("kill", "--signal", "TERM", self.name)
        try:
            status = self.process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            return None, None, None
        seconds = time.monotonic() - started
        finished = self.state_time("FinishedAt")
        return seconds, (finished - sent if finished else None), status

    def remove(self):
        if self.process.poll() is None:
            self.engine_run("kill", "--signal", "KILL", self.name, check_status=False)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.engine_run("rm", "--force", self.name, check_status=False)
        self._log.close()


def wait_for_document(collection, query, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = collection.find_one(query)
        if document is not None:
            return document
        time.sleep(0.1)
    return None


def check_log_clean(log):
    check("Traceback" not in log, "a traceback in the container's log")
    errors = [line for line in log.splitlines() if re.search(r"\bERROR\b|\bCRITICAL\b", line)]
    check(not errors, f"errors in the container's log: {errors[:5]}")


def app_cold_start(container, ready_after):
    """Seconds from the container's process start to the first 200 (the function's own start)."""
    process_started = container.state_time("StartedAt")
    if process_started is None:
        return None
    first_200 = container.started_wall.timestamp() + ready_after
    return first_200 - process_started


def check_production_like(args, workdir, mongo_uri):
    print("production-like run: MONGODB, CLICK_SECRET, WORKERS=2, THREADS=4", flush=True)
    env = {"PORT": str(free_port()), "MONGODB": mongo_uri, "CLICK_SECRET": secrets.token_urlsafe(32),
           "WORKERS": "2", "THREADS": "4"}
    container = Container(args.engine, args.run_flags, args.image, env, workdir, "production")
    try:
        ready_after = container.wait_ready()
        own_start = app_cold_start(container, ready_after)
        passed(f"/healthz answers on the random PORT {container.port}: {ready_after:.1f} s after `run`"
               + (f" ({own_start:.1f} s after the container's process started)" if own_start is not None else ""))

        health = requests.get(container.base + "/healthz", timeout=5).json()
        check(health.get("status") == "ok", f"/healthz status is {health.get('status')!r}, not 'ok': {health}")
        check(health.get("mongo", {}).get("reachable") is True, f"/healthz does not reach Mongo: {health.get('mongo')}")
        store = health.get("store") or {}
        check(store, f"/healthz names no default store: {health}")
        passed(f"/healthz: status ok, Mongo reachable, store {store.get('name')} {store.get('version')}")

        status = container.exec("sh", "-c", "for f in /proc/[0-9]*/status; do "
                                "awk '/^Name:/{n=$2} /^Uid:/{print n, $2, $3}' \"$f\"; done")
        check(status.returncode == 0 and status.stdout.strip(), f"cannot list the container's processes: {status.stderr}")
        processes = [line.split() for line in status.stdout.splitlines() if line.strip()]
        root_owned = [p for p in processes if p[1] == "0" or p[2] == "0"]
        check(not root_owned, f"processes running as root in the container: {root_owned}")
        servers = [p for p in processes if p[0] not in ("sh", "awk")]
        check(len(servers) >= 3, f"expected gunicorn's master and 2 workers, found {servers}")
        passed(f"non-root: {len(servers)} server processes, uid {servers[0][1]}")

        for path in ("/app/function", "/app/model_store"):
            probe = container.exec("sh", "-c", f"touch {path}/.write-probe")
            check(probe.returncode != 0, f"the serving user can write to {path}")
        passed("code and store are read-only for the serving user")

        answer = requests.get(container.base + "/", params={"text": QUERY, "k": 3}, timeout=30)
        check(answer.status_code == 200, f"GET /?text= answered {answer.status_code}: {answer.text[:300]}")
        body = answer.json()
        results = body.get("results") or []
        check(results, f"GET /?text= returned no results: {body}")
        check(all(r.get("click_url", "").startswith(container.base + "/click?") for r in results),
              f"click links do not point back at the function: {[r.get('click_url') for r in results]}")
        passed(f"GET /?text={QUERY!r}: {len(results)} results, top {results[0].get('title')!r} "
               f"({results[0].get('score')})")

        posted = requests.post(container.base + "/", json={"text": "greek philosophy and logic", "k": 2}, timeout=30)
        check(posted.status_code == 200 and posted.json().get("results"),
              f"POST / answered {posted.status_code}: {posted.text[:300]}")
        passed("POST / with JSON answers")

        bad = requests.get(container.base + "/", params={"text": QUERY, "k": "many"}, timeout=10)
        check(bad.status_code == 400 and "error" in bad.json(),
              f"a bad k answered {bad.status_code}: {bad.text[:300]}")
        passed(f"bad input: 400 {bad.json()['error'].get('code')}")

        click = requests.get(results[0]["click_url"], allow_redirects=False, timeout=10)
        check(click.status_code == 302, f"the click link answered {click.status_code}, not 302: {click.text[:300]}")
        check(click.headers.get("Location") == results[0]["url"],
              f"the click redirects to {click.headers.get('Location')!r}, not {results[0]['url']!r}")
        passed(f"click link: 302 to {results[0]['url']}")

        widget = requests.get(container.base + "/assets/widget.js", timeout=10)
        check(widget.status_code == 200 and widget.headers.get("Content-Type", "").startswith("text/javascript")
              and "click_url" in widget.text, f"/assets/widget.js answered {widget.status_code} "
              f"{widget.headers.get('Content-Type')!r}: the image lacks function/static/")
        passed(f"/assets/widget.js: {len(widget.content)} bytes of JavaScript")

        client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        db = client.get_default_database()
        request_id = body.get("request_id")
        logged = wait_for_document(db["requests"], {"_id": request_id})
        check(logged is not None, f"the request {request_id} is not in Mongo's 'requests' collection")
        clicked = wait_for_document(db["clicks"], {"request_id": request_id})
        check(clicked is not None, f"the click on request {request_id} is not in Mongo's 'clicks' collection")
        passed("request and click events are in Mongo")

        # the last request right before SIGTERM: its event must not be lost on the way out
        last = requests.get(container.base + "/", params={"text": "volcano eruption lava", "k": 1}, timeout=30)
        check(last.status_code == 200, f"the last query answered {last.status_code}")
        seconds, own_stop, status = container.terminate()
        check(seconds is not None, f"still running {GRACE_SECONDS} s after SIGTERM: the platform would SIGKILL it")
        check(status == 0, f"exit status {status} after SIGTERM, not 0")
        passed(f"SIGTERM: exit status 0, `run` returned after {seconds:.1f} s"
               + (f", the process ended {own_stop:.1f} s after the signal" if own_stop is not None else "")
               + f" (grace {GRACE_SECONDS} s)")
        check(wait_for_document(db["requests"], {"_id": last.json().get("request_id")}, timeout=5) is not None,
              "the request made just before SIGTERM never reached Mongo")
        passed("the request made just before SIGTERM is in Mongo")
        client.close()

        log = container.output()
        check_log_clean(log)
        check("MONGODB is not set" not in log and "CLICK_SECRET is not set" not in log,
              "configuration warnings although MONGODB and CLICK_SECRET were set")
        passed("log: no error, no traceback, no configuration warning")
        return {"ready": ready_after, "own_start": own_start, "stop": seconds, "own_stop": own_stop}
    except CheckFailed:
        print(f"---- container log ({container.name}) ----\n{container.output()[-4000:]}\n----", flush=True)
        raise
    finally:
        container.remove()


def check_laptop_like(args, workdir):
    print("laptop-like run: PORT only", flush=True)
    env = {"PORT": str(free_port())}
    container = Container(args.engine, args.run_flags, args.image, env, workdir, "laptop")
    try:
        ready_after = container.wait_ready()
        passed(f"/healthz answers on PORT {container.port}: {ready_after:.1f} s after `run`")
        answer = requests.get(container.base + "/", params={"text": QUERY, "k": 1}, timeout=30)
        check(answer.status_code == 200 and answer.json().get("results"),
              f"GET /?text= answered {answer.status_code} without MONGODB: {answer.text[:300]}")
        passed("answers without MONGODB or CLICK_SECRET")
        seconds, _, status = container.terminate()
        check(seconds is not None, f"still running {GRACE_SECONDS} s after SIGTERM")
        check(status == 0, f"exit status {status} after SIGTERM, not 0")
        log = container.output()
        check(log.count("MONGODB is not set") == 1,
              f"expected one 'MONGODB is not set' warning, found {log.count('MONGODB is not set')}")
        check("CLICK_SECRET is not set" in log, "no warning that click links use a random key")
        check_log_clean(log)
        passed(f"one warning each for MONGODB and CLICK_SECRET; stopped in {seconds:.1f} s")
    except CheckFailed:
        print(f"---- container log ({container.name}) ----\n{container.output()[-4000:]}\n----", flush=True)
        raise
    finally:
        container.remove()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="localhost/related-content")
    parser.add_argument("--engine", default=os.environ.get("CONTAINER_ENGINE", DEFAULT_ENGINE),
                        help=f"container engine command (default: {DEFAULT_ENGINE!r})")
    parser.add_argument("--run-flags", default=DEFAULT_RUN_FLAGS, help=f"flags for `run` (default: {DEFAULT_RUN_FLAGS!r})")
    args = parser.parse_args(argv)
    args.engine = shlex.split(args.engine)
    args.run_flags = shlex.split(args.run_flags)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="container-check-") as workdir:
        mongo, mongo_uri = start_embedded_mongo(Path(workdir) / "mongo")
        mongo_uri = mongo_uri.rsplit("/", 1)[0] + "/container_check"
        try:
            figures = check_production_like(args, workdir, mongo_uri)
            check_laptop_like(args, workdir)
        except CheckFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr, flush=True)
            return 1
        finally:
            stop(mongo)
    own_start = f" ({figures['own_start']:.1f} s from the process start)" if figures["own_start"] is not None else ""
    own_stop = f" ({figures['own_stop']:.1f} s to the process end)" if figures["own_stop"] is not None else ""
    print(f"container check passed in {time.monotonic() - started:.0f} s: first 200 {figures['ready']:.1f} s "
          f"after `run`{own_start}; SIGTERM to `run` returning {figures['stop']:.1f} s{own_stop}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
