"""The function as it is deployed: a `functions-framework` process (gunicorn underneath)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.procmem import cpu_seconds
from conftest import READER, ROOT, wait_for_events, wait_for_port
from function.devserver import free_port, start_embedded_mongo, stop


def test_real_server_answers_redirects_and_logs(function_process, function_env, pages):
    server = function_process().wait_ready()
    body = requests.get(server.base, params={"text": "moon landing astronaut"}, timeout=10).json()
    assert {"Astronaut", "Apollo 11"} <= {r["title"] for r in body["results"][:3]}
    assert body["results"][0]["click_url"].startswith(server.base + "/click?")

    fetched = requests.post(server.base, json={"url": pages.url("/moon-landing.html"), "k": 3}, timeout=10).json()
    assert fetched["source"] == "fetched" and len(fetched["results"]) == 3

    click = requests.get(body["results"][0]["click_url"], allow_redirects=False, timeout=10)
    assert click.status_code == 302 and click.headers["Location"] == body["results"][0]["url"]
    assert len(wait_for_events(function_env["MONGODB"], "clicks", 1)) == 1
    assert len(wait_for_events(function_env["MONGODB"], "requests", 2)) == 2
    health = requests.get(server.base + "/healthz", timeout=10).json()
    assert health["mongo"]["reachable"] is True and health["store"]["documents"] == 106


def test_mongo_outage_never_fails_an_answer_and_sigterm_flushes(function_process, tmp_path):
    """Mongo is down while requests are served; it comes back; SIGTERM writes everything."""
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/outage"
    server = function_process(MONGODB=uri).wait_ready()
    answered = []
    for text in ("moon landing", "greek philosophy", "atlantic ocean", "alkali metal", "abraham lincoln"):
        response = requests.get(server.base, params={"text": text}, timeout=10)
        assert response.status_code == 200 and response.json()["results"]
        answered.append(response.json()["request_id"])
    health = requests.get(server.base + "/healthz", timeout=10).json()
    assert health["status"] == "degraded" and health["mongo"]["reachable"] is False
    assert health["events"]["buffered"] == len(answered) and health["events"]["dropped"] == 0

    mongo, _ = start_embedded_mongo(tmp_path / "mongo", port=port)
    try:
        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 30  # inside Heroku's grace
        events = wait_for_events(uri, "requests", len(answered), timeout=5)
        assert sorted(e["_id"] for e in events) == sorted(answered)
        # never waited on the dead database: a write or read of it waits out its 2 s server selection
        # (events.connect), and each answer's own clock is well short of that
        assert max(e["total_ms"] for e in events) < 2000
    finally:
        stop(mongo)
    log = server.output()
    # the start says what is served and where events go (never the URI's password), the stop that nothing was lost
    assert f"serving wiki " in log and "(106 documents) [default]; events to MongoDB at 127.0.0.1:" in log
    assert re.search(r"listening on 0\.0\.0\.0:\d+: 1 worker x \d+ threads", log)
    assert re.search(rf"process \d+ exiting: {len(answered)} events written, none waiting \(0 dropped\)", log)


def test_forked_workers_never_share_an_event_id(function_process, function_env):
    """Event ids are random but not from the kernel per request (store.GIL_FREE_SIZE): each
    forked worker must draw its own. A repeated id would be a lost event: the writer takes a
    duplicate key for a retry's echo."""
    server = function_process(WORKERS="2").wait_ready()
    texts = ["moon landing", "greek philosophy", "atlantic ocean", "alkali metal", "abraham lincoln", "jazz music"]

    def ask(i):  # a connection each: both workers accept some
        return requests.get(server.base, params={"text": texts[i % len(texts)]}, timeout=30).json()["request_id"]

    deadline = time.monotonic() + 15  # the port opens before gunicorn has forked both workers
    while len(workers := _children(server.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2
    time.sleep(0.5)  # each worker's own start is over before the baseline
    idle = [cpu_seconds([pid]) for pid in workers]

    def both_answered():  # each request costs a worker milliseconds; idle, a worker spends ~none
        return all(cpu_seconds([pid]) - before >= 0.02 for pid, before in zip(workers, idle))

    asked = []
    for _ in range(10):  # more rounds while one worker took every connection (a loaded machine's scheduling)
        with ThreadPoolExecutor(8) as pool:
            asked += pool.map(ask, range(len(asked), len(asked) + 120))
        if both_answered():
            break
    assert both_answered()
    assert len(set(asked)) == len(asked)
    events = wait_for_events(function_env["MONGODB"], "requests", len(asked), timeout=15)
    assert sorted(event["_id"] for event in events) == sorted(asked)


def test_without_mongodb_it_still_answers_and_says_so(function_process):
    server = function_process(MONGODB="").wait_ready()
    response = requests.get(server.base, params={"text": "moon landing"}, timeout=10)
    assert response.status_code == 200
    health = requests.get(server.base + "/healthz", timeout=10).json()
    assert health["mongo"].items() >= {"configured": False, "reachable": False}.items()
    stats = requests.get(server.base + "/stats", timeout=10)
    assert stats.status_code == 503 and stats.json()["error"]["code"] == "events_unavailable"
    server.stop()
    assert "MONGODB is not set" in server.output()


def test_it_writes_nothing_in_its_home(function_process, tmp_path):
    """A platform may give a container no writable home (Knative's readOnlyRootFilesystem; Cloud Run's
    writes count against the instance's memory): gunicorn's control socket, which nothing here uses, had
    been made in ~/.gunicorn, and had logged an ERROR where it could not be."""
    home = tmp_path / "home"
    home.mkdir()
    server = function_process(MONGODB="", HOME=str(home), XDG_RUNTIME_DIR="").wait_ready()
    assert requests.get(server.base, params={"text": "moon landing"}, timeout=10).status_code == 200
    server.stop()
    assert "Control server" not in server.output()
    assert list(home.iterdir()) == []


def test_log_format_json_gives_one_object_a_line_with_its_severity(function_process):
    """Cloud Run reads a JSON line as one entry with its severity; a text line has none there."""
    server = function_process(MONGODB="", LOG_FORMAT="json").wait_ready()
    assert requests.get(server.base, params={"text": "moon landing"}, timeout=10).status_code == 200
    server.stop()
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    assert lines and all(line.keys() >= {"severity", "message", "time", "logger"} for line in lines)
    severities = {(line["severity"], line["logger"]) for line in lines}
    assert ("WARNING", "related.events") in severities and ("INFO", "related") in severities
    assert any(line["message"].startswith("listening on 0.0.0.0:") for line in lines)


def test_log_format_json_gives_gunicorns_own_lines_as_json_too(function_process):
    """gunicorn logs through a handler of its own ("WORKER TIMEOUT", "Perhaps out of memory?", a worker's
    traceback): in text, Cloud Run had kept those without a severity, a traceback line by line."""
    server = function_process(MONGODB="", LOG_FORMAT="json", GUNICORN_LOG_LEVEL="info").wait_ready()
    server.stop()
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines
    entries = [json.loads(line) for line in lines]
    assert any(entry["logger"] == "gunicorn.error" and entry["severity"] == "INFO"
               and entry["message"].startswith("Booting worker") for entry in entries)


def test_log_format_json_says_when_functions_frameworks_own_logging_has_the_root(function_process):
    # LOG_EXECUTION_ID gives the root logger functions-framework's handler before the function's code runs
    server = function_process(MONGODB="", LOG_FORMAT="json", LOG_EXECUTION_ID="true").wait_ready()
    server.stop()
    assert "LOG_FORMAT=json is not applied: the root logger has a handler already" in server.output()


def test_a_bad_log_format_stops_the_start_saying_so_in_text(function_process):
    server = function_process(LOG_FORMAT="yaml")
    assert server.process.wait(timeout=60) != 0
    log = server.output()
    assert log.count("LOG_FORMAT='yaml' is not text or json") == 1 and "CRITICAL related: cannot start" in log


def test_links_survive_a_restart_with_the_same_secret(function_process):
    first = function_process().wait_ready()
    link = requests.get(first.base, params={"text": "moon landing"}, timeout=10).json()["results"][0]["click_url"]
    first.stop()
    second = function_process(PORT=str(first.port)).wait_ready()
    assert second.port == first.port
    response = requests.get(link, allow_redirects=False, timeout=10)
    assert response.status_code == 302


def test_links_survive_a_restart_with_a_rotated_secret(function_process, function_env, tmp_path):
    """An operator's rotation: a restart with a new CLICK_SECRET and the old key in
    CLICK_SECRET_PREVIOUS_FILE. The link issued before it is still a click, and the start says so."""
    first = function_process().wait_ready()
    answer = requests.get(first.base, params={"text": "moon landing"}, timeout=10).json()
    first.stop()
    previous = tmp_path / "click-secret-previous"
    previous.write_text(function_env["CLICK_SECRET"] + "\n")
    second = function_process(PORT=str(first.port), CLICK_SECRET="a-rotated-click-key-0123456789",
                              CLICK_SECRET_PREVIOUS_FILE=str(previous)).wait_ready()
    response = requests.get(answer["results"][0]["click_url"], allow_redirects=False, timeout=10,
                            headers=READER)
    assert response.status_code == 302 and response.headers["Location"] == answer["results"][0]["url"]
    (click,) = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert click["_id"] == f"{answer['request_id']}-1"
    assert "; click links signed with CLICK_SECRET, 1 previous key accepted" in second.output()


def test_a_bad_setting_stops_the_start_with_its_name_said_once(function_process):
    """Said once: the log line and the exit's message had said it twice, one under the other."""
    server = function_process(MAX_K="lots")
    assert server.process.wait(60) != 0
    output = server.output()
    assert output.count("MAX_K='lots' is not a valid int") == 1, output
    assert "CRITICAL related: cannot start: MAX_K='lots' is not a valid int" in output


def test_make_run_announces_the_server_once_it_listens_and_only_on_loopback(function_env):
    port = free_port()
    env = {**os.environ, **function_env, "PORT": str(port)}
    env.pop("HOST", None)
    devserver = subprocess.Popen([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env,
                                 start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reader = ThreadPoolExecutor(1)  # a devserver that neither prints nor exits fails the test
    try:
        banner = reader.submit(devserver.stdout.readline).result(timeout=120)
        assert banner.startswith(f"serving on http://localhost:{port}/")
        # printed once it answers, not before
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(devserver.pid, signal.SIGTERM)  # it stops its server, in a session of its own
        devserver.wait(30)
        reader.shutdown(wait=False)


def test_make_run_with_a_bad_setting_says_why_and_never_serving_on(function_env):
    env = {**os.environ, **function_env, "PORT": str(free_port()), "MAX_K": "lots"}
    done = subprocess.run([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert (done.stdout + done.stderr).count("MAX_K='lots' is not a valid int") == 1, done.stderr
    assert "serving on" not in done.stdout + done.stderr
    # PORT is read by functions-framework, whose message named its own "--port"
    env = {**os.environ, **function_env, "PORT": "abc"}
    done = subprocess.run([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "PORT='abc' is not a port number" in done.stderr


def test_make_run_builds_the_sample_only_for_its_own_default_store(tmp_path):
    """A MODEL_STORE of the caller's had had the Wikipedia sample built all the same (8.5 s of a first run,
    on a store the function does not look at). ``make -n -B`` says what it would run were every target out
    of date, the sample's CURRENT among them."""
    env = {key: value for key, value in os.environ.items() if key != "MODEL_STORE"}
    plans = {}
    for label, extra in (("default", {}), ("own", {"MODEL_STORE": str(tmp_path)})):
        done = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, env={**env, **extra}, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        plans[label] = done.stdout
    assert "function.build" in plans["default"] or "model-store" in plans["default"]
    assert "function.build" not in plans["own"] and "model-store" not in plans["own"]
    assert "function.devserver" in plans["own"]


def test_the_devserver_takes_no_arguments_and_says_so_before_starting_anything(function_env, tmp_path):
    """A site owner's "python -m function.devserver --help" had created a click key, started nx-27017 and
    stopped on the store it had not yet been told of; "--port 8198" was ignored unsaid."""
    env = {**os.environ, **function_env, "MODEL_STORE": str(tmp_path)}
    env.pop("MONGODB", None)  # unset: the embedded Mongo it would start, were it to start anything
    done = subprocess.run([sys.executable, "-m", "function.devserver", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "`make run`" in done.stdout and "environment variable" in done.stdout
    assert "nx-27017 at" not in done.stdout + done.stderr and "cannot start" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "function.devserver", "--port", "8198"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "takes no arguments (got --port 8198)" in done.stderr
    assert "PORT=8198" in done.stderr and "nx-27017 at" not in done.stdout + done.stderr


def test_make_run_on_a_port_in_use_says_so_and_never_serving_on(function_env):
    """A second `make run` on a port another server holds (the first `make run`, left running) had
    printed "serving on" at once, its check reaching the other server, and the curl it suggests was
    answered by that one, with its settings; gunicorn's "Address already in use" came seconds later."""
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {**os.environ, **function_env, "PORT": str(port)}
        env.pop("HOST", None)
        done = subprocess.run([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode != 0
    assert "serving on" not in done.stdout + done.stderr
    assert f"PORT={port} is in use on 127.0.0.1" in done.stderr


@pytest.mark.parametrize("host,said", [("nowhere.invalid", "HOST='nowhere.invalid' does not resolve"),
                                        ("192.0.2.1", "HOST=192.0.2.1 (192.0.2.1) is no address of this machine")])
def test_make_run_on_a_host_it_cannot_listen_on_names_host(function_env, host, said):
    """gunicorn had tried for 5 s, then said "Can't connect to ..." naming no setting."""
    env = {**os.environ, **function_env, "PORT": str(free_port()), "HOST": host}
    done = subprocess.run([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and said in done.stderr
    assert "serving on" not in done.stdout + done.stderr


def test_a_second_embedded_mongo_on_the_same_data_says_why_it_cannot_start(tmp_path):
    """A second `make run` in one folder: nx-27017's own reason had gone to /dev/null, leaving
    "process exited with status 1 before listening" in a traceback."""
    first, _ = start_embedded_mongo(tmp_path)
    try:
        with pytest.raises(RuntimeError, match=r"nx-27017 did not start \(.*already running"):
            start_embedded_mongo(tmp_path)
    finally:
        stop(first)


def test_an_embedded_mongo_slow_to_start_is_waited_for(tmp_path, monkeypatch):
    """On a busy machine nx-27017's start (its imports) had taken past the 20 s it was given: the test
    session's Mongo was refused and every test on it errored. Held stopped for 25 s from its start, it
    is waited for and answers."""
    import pymongo

    from function import devserver

    popen = subprocess.Popen
    held = []

    def started_held(args, **kwargs):  # the real nx-27017, stopped at once and let go 25 s later
        process = popen(args, **kwargs)
        os.kill(process.pid, signal.SIGSTOP)
        held.append(threading.Timer(25, os.kill, (process.pid, signal.SIGCONT)))
        held[-1].start()
        return process

    monkeypatch.setattr(devserver.subprocess, "Popen", started_held)
    mongo, uri = start_embedded_mongo(tmp_path)
    monkeypatch.undo()
    try:
        assert held and not held[0].is_alive()  # it was let go before it listened
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        assert client.admin.command("ping")["ok"] == 1
        client.close()
    finally:
        stop(mongo)


def _listening_addresses(port):
    """The IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # LISTEN
                found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.parametrize("key", [signal.SIGINT, signal.SIGQUIT], ids=["ctrl-c", "ctrl-backslash"])
def test_ctrl_c_on_make_run_stops_gracefully_and_writes_the_events(function_env, key):
    """A terminal's Ctrl-C signals its whole foreground group. The devserver alone must get it:
    gunicorn's worker, signalled twice (by the terminal and by its master), ran its quit
    handler twice and hung until it was killed, its buffered events lost. Whatever the key,
    gunicorn, in a session of its own, must not outlive the devserver."""
    port = free_port()
    env = {**os.environ, **function_env, "PORT": str(port)}
    # a session of its own stands in for the terminal's foreground process group
    devserver = subprocess.Popen([sys.executable, "-m", "function.devserver"], cwd=ROOT, env=env,
                                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = []
    try:
        wait_for_port("127.0.0.1", port, 30, devserver)
        asked = [requests.get(f"http://127.0.0.1:{port}/", params={"text": text}, timeout=10).json()["request_id"]
                 for text in ("moon landing", "greek philosophy", "atlantic ocean")]
        server[:] = _children(devserver.pid)
        assert len(server) == 1 and os.getsid(server[0]) != os.getsid(devserver.pid)

        started = time.monotonic()
        os.killpg(devserver.pid, key)
        devserver.wait(25)
        assert time.monotonic() - started < 20  # gunicorn kills a hung worker after 30 s
        events = wait_for_events(function_env["MONGODB"], "requests", len(asked), timeout=5)
        assert sorted(event["_id"] for event in events) == sorted(asked)
        with pytest.raises(ProcessLookupError):
            os.kill(server[0], 0)
    finally:
        for pid in [devserver.pid] + server:  # each leads a process group of its own
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _children(pid):
    return [child for child in map(int, filter(str.isdigit, os.listdir("/proc"))) if _parent(child) == pid]


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
