"""Settings, read once from the environment (the only configuration there is).

A bad value stops the function at start with a message naming the variable,
rather than surfacing later as a failed request.
"""

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# A corpus's or an engine's name, wherever one is checked: here, as config imports none of ours at
# the top (params -> fetch_policy -> config). \Z: "$" lets a final newline through
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class ConfigError(ValueError):
    pass


def _public_url(raw):
    """PUBLIC_URL without its trailing slash; ConfigError unless it is an http(s) address with a
    host: "related.example.com" had made every click link relative, "ftp://x" an ftp one."""
    url = raw.strip().rstrip("/")
    if not url:
        return url
    from .urls import is_link  # when set only: idna is not needed to start

    if not is_link(url) or urlsplit(url).query or urlsplit(url).fragment:
        raise ConfigError(f"PUBLIC_URL={raw.strip()[:200]!r} is not an http(s) address such as "
                          "https://related.example.com (the base of every click link)")
    return url


def read_secret(name, value, path, min_bytes=0, strip=False):
    """The secret setting ``name`` (bytes): its value, else the content of the file named by
    ``name``_FILE (``path``), else b"" (unset). ConfigError when both are set, the file cannot be
    read, or the secret is shorter than ``min_bytes``: a short one can be guessed. Never logged.
    ``strip``: the value's spaces and line ends at either end are no part of it either (a token
    an HTTP header carries, which cannot hold them there); a key's value is kept as it is, since
    links signed with it must verify."""
    if value and path:  # which one is meant would be a guess (CLICK_SECRET's file had been ignored): said
        raise ConfigError(f"{name} and {name}_FILE are both set: set one")
    given = bool(value or path)  # a value of spaces only is set: never read as unset
    if path:
        try:
            value = Path(path).read_bytes().strip()  # the file's final newline is no part of it
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {named_path(path)}: {exc.strerror}") from None
    elif strip:
        value = value.strip()
    if given and len(value) < min_bytes:  # an empty file too: it is no "unset"
        raise ConfigError(f"{secret_source(name, path)} must be at least {min_bytes} characters of random text")
    return value


def secret_source(name, path):
    """Where the secret setting ``name`` was read, as messages name it: the variable, or its file."""
    return f"{name}_FILE ({named_path(path)})" if path else name


def named_path(path):
    """``path`` as a message names it: absolute, from the working directory it was read in ("keys/old"
    had left the owner to guess which file, read from where). Links are not followed: its own name."""
    return os.path.abspath(path)


def _cors_origin(raw):
    """CORS_ORIGIN as browsers compare it: "*", "" (none), or one origin, scheme://host[:port], a
    trailing slash dropped. Sent as written, "https://blog.example.com/" or a list of origins matched
    no browser's Origin, and every widget failed, said only in the browser's console."""
    value = raw.strip()
    if value in ("*", "", "null"):
        return value
    origin = value.rstrip("/")
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 -- a port that is not a number raises
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc
            or parts.path or parts.query or parts.fragment or "," in origin or " " in origin):
        raise ConfigError(f"CORS_ORIGIN={value[:200]!r} is not an origin such as https://blog.example.com "
                          "(one origin, or * for any: browsers match the Access-Control-Allow-Origin header exactly)")
    return origin


def env_number(env, name, default, kind=int, low=None, high=None):
    """``env[name]`` as ``kind`` within [low, high], ``default`` when unset or blank; ConfigError
    naming the variable otherwise."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name}={raw!r} must be between {low} and {high}")
    return value


def _engine_weights(raw):
    """"lsi=0.7,tfidf=0.3" -> {"lsi": 0.7, "tfidf": 0.3}."""
    weights = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = (piece.strip() for piece in part.partition("="))
        try:
            weight = float(value) if sep else -1.0
        except ValueError:
            weight = -1.0
        # a split that cannot be read is refused: read as it was ("lsi:50" an engine of that name), it
        # gave every request the default engine, and an experiment that never ran
        # the name's form only: which engines a store has, the App checks
        if not NAME.match(name) or not 0 <= weight < math.inf:
            raise ConfigError(f"ENGINE_WEIGHTS: {part!r} is not NAME=WEIGHT (an engine's name, a weight >= 0)")
        if name in weights:
            raise ConfigError(f"ENGINE_WEIGHTS: {name!r} is given twice")
        weights[name] = weight
    if weights and not any(weights.values()):
        raise ConfigError("ENGINE_WEIGHTS: at least one weight must be above 0")
    return weights


def worker_threads(env):
    """functions-framework's THREADS (4 x cores by default), read here for FETCH_CONCURRENCY."""
    if "THREADS" in env and not env["THREADS"].strip():  # functions-framework's int("") fails unnamed
        raise ConfigError("THREADS is set but empty: unset it (4 x cores) or give a number")
    return env_number(env, "THREADS", (os.cpu_count() or 1) * 4, int, 1, 100_000)


def worker_processes(env):
    """functions-framework's WORKERS (1 by default), read here only to refuse it by name: functions-framework
    reads it with a bare int(), and "two" had stopped the start with its traceback. No setting keeps
    it: gunicorn's own count is the one used (and logged, gunicorn_setup)."""
    if "WORKERS" in env and not env["WORKERS"].strip():
        raise ConfigError("WORKERS is set but empty: unset it (1) or give a number")
    return env_number(env, "WORKERS", 1, int, 1, 1000)


@dataclass(frozen=True)
class Settings:
    model_store: Path = Path("model_store")
    default_corpus: str = ""  # "" : "wiki" when it is served, else the first corpus by name (App)
    # secrets, and the URI's password, out of the repr: a settings object in a traceback or a log shows none
    mongodb_uri: str = field(default="", repr=False)
    click_secret: bytes = field(default=b"", repr=False)
    click_secret_file: str = ""
    # keys that verify links, never sign one (clicks.load_previous_secrets)
    click_secret_previous: bytes = field(default=b"", repr=False)
    click_secret_previous_file: str = ""
    click_ttl_seconds: int = 30 * 86400
    public_url: str = ""  # base for click links; "" : from the request's host
    max_k: int = 100
    max_text_chars: int = 100_000
    max_body_bytes: int = 1_000_000
    max_query_bytes: int = 8_000
    event_buffer: int = 10_000
    event_flush_seconds: float = 5.0  # with the exit's own 2-3 s, inside Cloud Run's 10
    stats_max_events: int = 20_000
    # the site owner's token for /stats and /dashboard (function/access.py); out of repr, which may be printed
    stats_token: bytes = field(default=b"", repr=False)
    stats_token_file: str = ""
    url_cache_size: int = 512
    url_cache_ttl: float = 600.0
    engine_weights: dict = field(default_factory=dict)
    store_check_seconds: float = 2.0
    cors_origin: str = "*"
    fetch_allowed_domains: str = ""  # raw; "corpus" is resolved against the stores
    threads: int = 8  # a worker's
    # requests of a worker waiting on page fetches at once: by default two threads fewer than it
    # has, since a fetch holds its thread up to FETCH_DEADLINE, and /healthz, texts, ids and
    # cached pages must still find a thread while sites are slow
    fetch_concurrency: int = 6
    # a slow client's hold on a thread (function/gunicorn_setup.py): its request's head (gunicorn's
    # own wait of up to 5 s for a first byte within it), and the whole exchange (the body, the
    # answer, its writing: a page fetch's FETCH_DEADLINE within it)
    client_head_seconds: float = 10.0
    client_request_seconds: float = 60.0

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        threads = worker_threads(env)
        worker_processes(env)  # functions-framework's to use: only refused here, by name
        return cls(
            model_store=Path(env.get("MODEL_STORE", "").strip() or "model_store"),
            default_corpus=env.get("DEFAULT_CORPUS", "").strip(),
            mongodb_uri=env.get("MONGODB", "").strip(),
            click_secret=env.get("CLICK_SECRET", "").encode(),
            click_secret_file=env.get("CLICK_SECRET_FILE", "").strip(),
            click_secret_previous=env.get("CLICK_SECRET_PREVIOUS", "").encode(),
            click_secret_previous_file=env.get("CLICK_SECRET_PREVIOUS_FILE", "").strip(),
            click_ttl_seconds=env_number(env, "CLICK_TTL_DAYS", 30, int, 1, 3650) * 86400,
            public_url=_public_url(env.get("PUBLIC_URL", "")),
            max_k=env_number(env, "MAX_K", 100, int, 1, 10_000),
            max_text_chars=env_number(env, "MAX_TEXT_CHARS", 100_000, int, 100, 10_000_000),
            max_body_bytes=env_number(env, "MAX_BODY_BYTES", 1_000_000, int, 1024, 100_000_000),
            # gunicorn reads request lines of at most 8,190 bytes (function/gunicorn_setup.py)
            max_query_bytes=env_number(env, "MAX_QUERY_BYTES", 8_000, int, 256, 8_000),
            event_buffer=env_number(env, "EVENT_BUFFER", 10_000, int, 0, 10_000_000),
            event_flush_seconds=env_number(env, "EVENT_FLUSH_SECONDS", 5.0, float, 0, 25),
            stats_max_events=env_number(env, "STATS_MAX_EVENTS", 20_000, int, 100, 10_000_000),
            stats_token=env.get("STATS_TOKEN", "").encode(),
            stats_token_file=env.get("STATS_TOKEN_FILE", "").strip(),
            url_cache_size=env_number(env, "URL_CACHE_SIZE", 512, int, 0, 1_000_000),
            url_cache_ttl=env_number(env, "URL_CACHE_TTL", 600.0, float, 0, 7 * 86400),
            engine_weights=_engine_weights(env.get("ENGINE_WEIGHTS", "")),
            store_check_seconds=env_number(env, "STORE_CHECK_SECONDS", 2.0, float, 0, 86400),
            cors_origin=_cors_origin(env.get("CORS_ORIGIN", "*")),
            fetch_allowed_domains=env.get("FETCH_ALLOWED_DOMAINS", "").strip(),
            threads=threads,
            fetch_concurrency=env_number(env, "FETCH_CONCURRENCY", max(1, threads - 2), int, 1, 10_000),
            client_head_seconds=env_number(env, "CLIENT_HEAD_SECONDS", 10.0, float, 5, 600),
            client_request_seconds=env_number(env, "CLIENT_REQUEST_SECONDS", 60.0, float, 1, 3600),
        )
