"""`make run`: the function on the embedded defaults, for development.

    python -m function.devserver

- CLICK_SECRET unset: a development key is created once in data/click-secret
  and used through CLICK_SECRET_FILE, so links survive restarts;
- MONGODB unset: nx-27017 (a MongoDB wire-protocol server on SQLite) is
  started on loopback with its database in data/, and stopped on exit;
- then functions-framework serves function/main.py on $PORT (default 8080), on
  loopback unless HOST is set (HOST=0.0.0.0: every interface).

Not part of the image: in production MONGODB and CLICK_SECRET are set.
"""

import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with status {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout} s")


# nx-27017's start is ~0.3 CPU s of imports; on a busy 2-core machine it had taken more than the 20 s
# it was given, and a test session's Mongo, every test on it errored. Waiting ends once it listens or
# exits (said at once), so a long bound costs a healthy start nothing; functions-framework's is as long.
MONGO_START_SECONDS = 120


def start_embedded_mongo(data_dir, port=None):
    """Start nx-27017 on loopback, one SQLite file per database in ``data_dir``;
    returns (process, MONGODB URI)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    binary = shutil.which("nx-27017", path=str(Path(sys.executable).parent)) or shutil.which("nx-27017")
    if binary is None:
        raise RuntimeError("nx-27017 is not installed (pip install -r requirements-dev.txt)")
    output = data_dir / "nx-27017.out"  # what it says before its log opens ("already running")
    with open(output, "wb") as said:
        process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "-p", str(port), "--data-dir", str(data_dir),
             "--log-file", str(data_dir / "nx-27017.log"), "--pid-file", str(data_dir / "nx-27017.pid")],
            stdout=said, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_port("127.0.0.1", port, MONGO_START_SECONDS, process)
    except RuntimeError as exc:
        process.kill()
        lines = output.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"nx-27017 did not start ({lines[-1] if lines else exc})") from None
    return process, f"mongodb://127.0.0.1:{port}/related"


def function_command(source=ROOT / "function" / "main.py", target="handle"):
    """The command that serves a functions-framework target: this virtualenv's
    functions-framework (gunicorn underneath), which reads PORT itself."""
    return [str(Path(sys.executable).parent / "functions-framework"), "--source", str(source), "--target", target]


def stop_group(process, sig=signal.SIGTERM, timeout=20):
    """Signal a process started with start_new_session=True and all its children (gunicorn's
    workers); kill them if they are not gone within ``timeout``. Returns the exit status."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def stop(process, timeout=10):
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def development_click_key(data_dir):
    path = Path(data_dir) / "click-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
        print(f"created a development click-link key in {path} (production: set CLICK_SECRET)", flush=True)
    return path


EVERY_INTERFACE = ("", "0.0.0.0", "::")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def local_name(host):
    """How this machine names a server bound to ``host``."""
    return "localhost" if host in EVERY_INTERFACE or host in LOOPBACK else host


def bind_problem(host, port):
    """Why gunicorn could not listen on ``host``:``port`` (bound as gunicorn binds, with SO_REUSEADDR),
    else None: said before it starts, where gunicorn tries for 5 s and names neither setting."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return f"HOST={host!r} does not resolve: give a name or address of this machine (127.0.0.1, 0.0.0.0)"
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:  # another `make run` left running had been reached by
                    # the check below: "serving on" at once, the suggested curl answered by the other server
                    return (f"PORT={port} is in use on {address[0]} (another `make run`, or another server): "
                            "stop it (Ctrl-C), or choose another PORT")
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"HOST={host} ({address[0]}) is no address of this machine (127.0.0.1, 0.0.0.0)"
    return None


def listening(server, host, port):
    """Whether ``server`` came to listen on ``port``: the banner waits for it, so that a setting
    refused at start (its message above) is not preceded by "serving on"."""
    try:
        wait_for_port(local_name(host), int(port), 120, server)
        return True
    except (RuntimeError, ValueError):  # it exited (and said why), or PORT is not a number (it says so)
        return False


def main(argv=None):
    # it takes no arguments: "--help" had created a click key, started nx-27017 and stopped on the
    # missing store, and "--port 8198" was ignored unsaid
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip() + "\n\nEvery setting is an environment variable (README.md, \"Configuration\"),"
              " e.g. PORT=8198 MODEL_STORE=/path/to/stores DEFAULT_CORPUS=site python -m function.devserver")
        return 0
    if argv:
        print(f"python -m function.devserver takes no arguments (got {' '.join(argv)}): its settings are "
              "environment variables, e.g. PORT=8198 MODEL_STORE=/path/to/stores DEFAULT_CORPUS=site "
              "(README.md, \"Configuration\"); --help says more", file=sys.stderr, flush=True)
        return 2
    data_dir = ROOT / "data"
    env = dict(os.environ)
    env.setdefault("MODEL_STORE", str(ROOT / "model_store"))
    if not env.get("CLICK_SECRET") and not env.get("CLICK_SECRET_FILE"):
        env["CLICK_SECRET_FILE"] = str(development_click_key(data_dir))
    server = mongo = None
    stops = []

    def forward(signum, _frame):
        stops.append(signum)
        if server is not None:  # the first stop is graceful (requests finish, events are written), the next quick
            server.send_signal(signal.SIGTERM if len(stops) == 1 else signal.SIGQUIT)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, forward)
    port = env.setdefault("PORT", "8080")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):  # functions-framework names --port
        print(f"cannot start: PORT={port!r} is not a port number (1-65535)", file=sys.stderr, flush=True)
        return 2
    problem = bind_problem(env.get("HOST", "127.0.0.1"), int(port))
    if problem:
        print(f"cannot start: {problem}", file=sys.stderr, flush=True)
        return 1
    try:
        if not env.get("MONGODB"):
            try:
                mongo, env["MONGODB"] = start_embedded_mongo(data_dir / "mongo")
            except RuntimeError as exc:
                hint = (f". Another `make run` in this folder holds {data_dir / 'mongo'}: stop it (Ctrl-C), or set "
                        "MONGODB to a MongoDB URI") if "already running" in str(exc) else ""
                print(f"cannot start: {exc}{hint}", file=sys.stderr, flush=True)
                return 1
            print(f"MONGODB is not set: started nx-27017 at {env['MONGODB']} (data in {data_dir / 'mongo'})",
                  flush=True)
        # loopback unless asked: a development server (its dashboard, its key) is not for the network
        host = env.setdefault("HOST", "127.0.0.1")
        # A session of its own: a terminal's Ctrl-C reaches only this process, which asks
        # gunicorn for one graceful stop. Sent to gunicorn's worker as well, it made the
        # worker's quit handler run twice, and the worker hung until it was killed.
        server = subprocess.Popen(function_command(), env=env, cwd=ROOT, start_new_session=True)
        if stops:  # asked to stop while starting
            server.send_signal(signal.SIGTERM)
        elif listening(server, host, port):
            name = local_name(host)
            url = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"  # an IPv6 address in a URL
            # the hint asks the default store: another default corpus may know no word of it
            hint = "curl '" + url + "/?text=moon+landing+astronaut'" if env.get("DEFAULT_CORPUS", "wiki") == "wiki" \
                else f"open http://{url}/ in a browser"
            print(f"serving on http://{url}/  (try: {hint})"
                  + ("  [every interface: other machines reach it too]" if host in EVERY_INTERFACE else ""), flush=True)
        return server.wait()
    finally:
        if server is not None:
            stop_group(server)  # however this process ends, gunicorn does not outlive it
        stop(mongo)


if __name__ == "__main__":
    raise SystemExit(main())
