"""Settings read from the environment: defaults that depend on others, and refusals that name the variable."""

import io
import json
import logging
import os
import re

import pytest

from function.config import ConfigError, Settings


def test_fetch_concurrency_is_two_threads_fewer_than_a_worker_has():
    assert Settings.from_env({"THREADS": "8"}).fetch_concurrency == 6
    assert Settings.from_env({"THREADS": "2"}).fetch_concurrency == 1
    assert Settings.from_env({"THREADS": "8", "FETCH_CONCURRENCY": "3"}).fetch_concurrency == 3
    # functions-framework's own default: 4 threads a core
    assert Settings.from_env({}).fetch_concurrency == max(1, (os.cpu_count() or 1) * 4 - 2)


@pytest.mark.parametrize("env,message", [
    ({"THREADS": "many"}, "THREADS='many' is not a valid int"),
    ({"THREADS": "0"}, "THREADS='0' must be between 1 and 100000"),
    ({"THREADS": " "}, "THREADS is set but empty"),
    # functions-framework reads WORKERS with a bare int(): "two" had stopped the start with its traceback
    ({"WORKERS": "two"}, "WORKERS='two' is not a valid int"),
    ({"WORKERS": "0"}, "WORKERS='0' must be between 1 and 1000"),
    ({"WORKERS": " "}, "WORKERS is set but empty"),
    ({"FETCH_CONCURRENCY": "0"}, "FETCH_CONCURRENCY='0' must be between 1 and 10000"),
    ({"MAX_QUERY_BYTES": "16384"}, "MAX_QUERY_BYTES='16384' must be between 256 and 8000"),
    ({"CLIENT_HEAD_SECONDS": "2"}, "CLIENT_HEAD_SECONDS='2' must be between 5 and 600"),
    ({"CLIENT_REQUEST_SECONDS": "forever"}, "CLIENT_REQUEST_SECONDS='forever' is not a valid float"),
    # every click link is built on it: a relative one, or an ftp one, had gone out in every answer
    ({"PUBLIC_URL": "related.example.com"}, "PUBLIC_URL='related.example.com' is not an http(s) address"),
    ({"PUBLIC_URL": "ftp://related.example.com"}, "PUBLIC_URL='ftp://related.example.com' is not an http(s)"),
    ({"PUBLIC_URL": "https://related.example.com/?a=1"}, "is not an http(s) address"),
    # sent as it was written, an origin browsers never match: every widget failed, said only in the console
    ({"CORS_ORIGIN": "https://blog.example.com,https://www.blog.example.com"}, "CORS_ORIGIN='https://blog.example.com,"),
    ({"CORS_ORIGIN": "blog.example.com"}, "is not an origin such as https://blog.example.com"),
    ({"CORS_ORIGIN": "https://blog.example.com/posts"}, "is not an origin such as https://blog.example.com"),
])
def test_bad_thread_and_fetch_counts_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_a_fetch_bound_that_leaves_no_thread_is_warned_about(function_env, caplog):
    from function.app import create_app

    create_app({**function_env, "THREADS": "4", "FETCH_CONCURRENCY": "3"})
    assert "FETCH_CONCURRENCY" not in caplog.text
    create_app({**function_env, "THREADS": "4", "FETCH_CONCURRENCY": "4"})
    assert "FETCH_CONCURRENCY=4 is not below THREADS=4" in caplog.text
    caplog.clear()
    create_app({**function_env, "THREADS": "2"})
    assert "thread" not in caplog.text
    # one thread: the default bound (1) is not the operator's doing, and says so
    create_app({**function_env, "THREADS": "1"})
    assert "THREADS=1: a request waiting on a slow site holds the worker's only thread" in caplog.text
    assert "FETCH_CONCURRENCY" not in caplog.text


@pytest.mark.parametrize("raw", ["garbage", "lsi:50,tfidf:50", "lsi=50,tfidf=x", "lsi=-1", "lsi=inf", "=5",
                                 "lsi=50,lsi=20"])
def test_an_engine_split_that_cannot_be_read_is_refused(raw):
    # each was read before: the bare and colon-joined ones as engines of those names, with weight 1,
    # so every request got the default engine and the experiment never ran
    with pytest.raises(ConfigError, match="ENGINE_WEIGHTS: "):
        Settings.from_env({"ENGINE_WEIGHTS": raw})


def test_an_engine_split_naming_an_engine_no_store_has_stops_the_start(function_env):
    from function.app import create_app

    assert Settings.from_env({"ENGINE_WEIGHTS": " lsi = 50 , tfidf=50"}).engine_weights == {"lsi": 50, "tfidf": 50}
    create_app({**function_env, "ENGINE_WEIGHTS": "lsi=50,tfidf=50"})
    with pytest.raises(ConfigError, match=re.escape("ENGINE_WEIGHTS names 'tf-idf', which no store has "
                                                    "(engines: lsi, tfidf)")):
        create_app({**function_env, "ENGINE_WEIGHTS": "lsi=50,tf-idf=50"})


def test_several_corpora_without_a_default_corpus_are_warned_about(function_env, model_store, tmp_path, caplog):
    from function.app import create_app

    (tmp_path / "wiki").symlink_to(model_store / "wiki")
    create_app({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": ""})
    assert "DEFAULT_CORPUS" not in caplog.text  # one corpus: it is the default, nothing to choose
    (tmp_path / "blog").symlink_to(model_store / "wiki")
    create_app({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "blog"})
    assert "DEFAULT_CORPUS" not in caplog.text
    create_app({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": ""})
    assert "DEFAULT_CORPUS is not set: requests without corpus= are answered from 'wiki', of blog, wiki" \
        in caplog.text


def test_public_url_is_kept_without_its_trailing_slash():
    assert Settings.from_env({"PUBLIC_URL": " https://related.example.com/base/ "}).public_url == \
        "https://related.example.com/base"


def test_both_click_secret_and_its_file_stop_the_start(tmp_path):
    """Which one signed was a guess (the file had been ignored, unsaid)."""
    from function.clicks import load_secret

    secret_file = tmp_path / "click-secret"
    secret_file.write_text("a-file-secret-of-some-length")
    both = Settings.from_env({"CLICK_SECRET": "an-env-secret-of-some-length", "CLICK_SECRET_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match="both set"):
        load_secret(both)
    assert load_secret(Settings.from_env({"CLICK_SECRET_FILE": str(secret_file)})) == \
        (b"a-file-secret-of-some-length", None)


def test_a_click_secret_shorter_than_16_characters_stops_the_start(tmp_path):
    """A short key is a guessable one: links anyone could sign would be followed and counted."""
    from function.clicks import load_secret

    with pytest.raises(ConfigError, match="CLICK_SECRET must be at least 16 characters"):
        load_secret(Settings.from_env({"CLICK_SECRET": "x" * 15}))
    secret_file = tmp_path / "click-secret"
    secret_file.write_text("y" * 15 + "\n")  # the line end is no part of the key
    with pytest.raises(ConfigError, match="CLICK_SECRET_FILE .* must be at least 16 characters"):
        load_secret(Settings.from_env({"CLICK_SECRET_FILE": str(secret_file)}))
    assert load_secret(Settings.from_env({"CLICK_SECRET": "x" * 16}))[1] is None


OLD_KEY, OLDER_KEY, NEW_KEY = "an-old-click-key-0123", "an-older-click-key-456", "the-new-click-key-789"


def test_previous_click_secrets_are_read_from_a_list_or_a_file_one_a_line(tmp_path):
    """Commas or line ends separate them; blank entries and repeats are nothing."""
    from function.clicks import load_previous_secrets

    def previous(**env):
        return load_previous_secrets(Settings.from_env({"CLICK_SECRET": NEW_KEY, **env}), NEW_KEY.encode())

    assert previous() == ((), None)
    assert previous(CLICK_SECRET_PREVIOUS=" , ") == ((), None)
    # an entry spaced at its ends is also kept as written: CLICK_SECRET, used as given, may have signed with it
    assert previous(CLICK_SECRET_PREVIOUS=f"{OLD_KEY} ,,{OLDER_KEY},{OLD_KEY},") == \
        ((OLD_KEY.encode(), OLDER_KEY.encode(), f"{OLD_KEY} ".encode()), None)
    # the signing key listed is left out, not its spaced form: another key, which may have signed links
    assert previous(CLICK_SECRET_PREVIOUS=f" {NEW_KEY}, {OLD_KEY} ")[0] == \
        tuple(key.encode() for key in (OLD_KEY, f" {NEW_KEY}", f" {OLD_KEY}", f"{OLD_KEY} ", f" {OLD_KEY} "))
    assert previous(CLICK_SECRET_PREVIOUS=f"{NEW_KEY} ")[0] == (f"{NEW_KEY} ".encode(),)
    listing = tmp_path / "click-secret-previous"
    listing.write_text(f"{OLD_KEY}\r\n\n{OLDER_KEY}\n")
    assert previous(CLICK_SECRET_PREVIOUS_FILE=str(listing)) == ((OLD_KEY.encode(), OLDER_KEY.encode()), None)
    ten = [f"an-old-click-key-{n:04}" for n in range(10)]  # the most that may be listed, the signing key besides
    listing.write_text("\n".join([NEW_KEY, *ten]))
    assert previous(CLICK_SECRET_PREVIOUS_FILE=str(listing))[0] == tuple(key.encode() for key in ten)
    # the shortest key CLICK_SECRET accepts is accepted when a rotation moves it here
    assert previous(CLICK_SECRET_PREVIOUS="k" * 16) == ((b"k" * 16,), None)
    listing.write_text("")  # a rotation over, its file emptied
    assert previous(CLICK_SECRET_PREVIOUS_FILE=str(listing)) == ((), None)
    # listing no key, it is no rotation: nothing to refuse without CLICK_SECRET either
    for unset in ({"CLICK_SECRET_PREVIOUS_FILE": str(listing)}, {"CLICK_SECRET_PREVIOUS": " , "}):
        assert load_previous_secrets(Settings.from_env(unset), b"a random key of 32 bytes........") == ((), None)


def test_the_signing_key_listed_as_previous_is_left_out_with_a_warning(tmp_path):
    """Not refused: a platform restarting on each changed setting passes through it mid-rotation."""
    from function.clicks import load_previous_secrets, load_secret

    secret_file = tmp_path / "click-secret"
    secret_file.write_text(NEW_KEY + "\n")
    settings = Settings.from_env({"CLICK_SECRET_FILE": str(secret_file), "CLICK_SECRET_PREVIOUS": f"{NEW_KEY},{OLD_KEY}"})
    key, _ = load_secret(settings)
    keys, warning = load_previous_secrets(settings, key)
    assert keys == (OLD_KEY.encode(),)
    assert warning == ("CLICK_SECRET_PREVIOUS lists the key that signs click links: left out (it is no previous "
                       "key). To rotate, set the new key in CLICK_SECRET")
    # a signing key with spaces at its ends, its trimmed form listed: that is another key, kept, and unwarned
    padded = Settings.from_env({"CLICK_SECRET": f" {NEW_KEY} ", "CLICK_SECRET_PREVIOUS": f"{NEW_KEY},{OLD_KEY}"})
    assert load_previous_secrets(padded, load_secret(padded)[0]) == ((NEW_KEY.encode(), OLD_KEY.encode()), None)


@pytest.mark.parametrize("env,message", [
    ({"CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS": OLD_KEY, "CLICK_SECRET_PREVIOUS_FILE": "/nonexistent/unread"},
     "CLICK_SECRET_PREVIOUS and CLICK_SECRET_PREVIOUS_FILE are both set: set one"),
    # new links would be signed with a random key and die with the process: that is no rotation
    ({"CLICK_SECRET_PREVIOUS": OLD_KEY}, "CLICK_SECRET_PREVIOUS is set but CLICK_SECRET is not: set the new key "
                                         "in CLICK_SECRET (or CLICK_SECRET_FILE), the old ones in CLICK_SECRET_PREVIOUS"),
    # a guessable key would let anyone sign links; the key itself is never in the message
    ({"CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS": f"{OLD_KEY},short-key"},
     "CLICK_SECRET_PREVIOUS: key 2 of 2 must be at least 16 characters of random text"),
    ({"CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS_FILE": "/nonexistent/click-secret-previous"},
     "CLICK_SECRET_PREVIOUS_FILE: cannot read /nonexistent/click-secret-previous: No such file or directory"),
    # each key is one HMAC for every link that fails to verify: unbounded, 1,000 old keys made a forged
    # link of 7 KB cost 14 ms (230 times one key's), a flood of ~70 a second a worker's every thread
    ({"CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS": ",".join(f"an-old-click-key-{n:04}" for n in range(11))},
     "CLICK_SECRET_PREVIOUS lists 11 keys: at most 10"),
])
def test_previous_click_secrets_that_cannot_be_used_stop_the_start(env, message):
    from function.clicks import load_previous_secrets

    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        load_previous_secrets(Settings.from_env(env), NEW_KEY.encode())
    assert "short-key" not in str(refused.value)


def test_the_start_says_which_keys_sign_and_verify_click_links(function_env, caplog, tmp_path):
    from function.app import create_app

    app = create_app({**function_env, "CLICK_SECRET": NEW_KEY})
    assert "; click links signed with CLICK_SECRET;" in app.describe()
    rotated = create_app({**function_env, "CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS": f"{OLD_KEY},{OLDER_KEY}"})
    assert "; click links signed with CLICK_SECRET, 2 previous keys accepted;" in rotated.describe()
    assert "CLICK_SECRET" not in caplog.text  # nothing to warn about
    unrotated = create_app({**function_env, "CLICK_SECRET": NEW_KEY, "CLICK_SECRET_PREVIOUS": NEW_KEY})
    assert "; click links signed with CLICK_SECRET;" in unrotated.describe()
    assert "CLICK_SECRET_PREVIOUS lists the key that signs click links" in caplog.text
    secret_file = tmp_path / "click-secret"
    secret_file.write_text(NEW_KEY + "\n")
    from_file = create_app({**function_env, "CLICK_SECRET": "", "CLICK_SECRET_FILE": str(secret_file),
                            "CLICK_SECRET_PREVIOUS": OLD_KEY})
    assert "; click links signed with CLICK_SECRET_FILE, 1 previous key accepted;" in from_file.describe()
    random_key = create_app({**function_env, "CLICK_SECRET": ""})
    assert "; click links signed with a random key (no CLICK_SECRET; warned above);" in random_key.describe()
    assert "CLICK_SECRET is not set" in caplog.text
    with pytest.raises(ConfigError, match="CLICK_SECRET_PREVIOUS is set but CLICK_SECRET is not"):
        create_app({**function_env, "CLICK_SECRET": "", "CLICK_SECRET_PREVIOUS": OLD_KEY})


def test_a_stats_token_is_read_from_its_variable_or_its_file_and_a_bad_one_stops_the_start(tmp_path):
    """An empty or short token would leave the figures guessable: the start refuses it, never opens them."""
    from function.access import load_token

    token_file = tmp_path / "stats-token"
    token_file.write_text("a-file-token-of-some-length\n")
    assert load_token(Settings.from_env({})) == b""  # unset: the figures are open
    assert load_token(Settings.from_env({"STATS_TOKEN": "an-env-token-of-some-length"})) == \
        b"an-env-token-of-some-length"
    assert load_token(Settings.from_env({"STATS_TOKEN_FILE": str(token_file)})) == b"a-file-token-of-some-length"
    both = {"STATS_TOKEN": "an-env-token-of-some-length", "STATS_TOKEN_FILE": str(token_file)}
    with pytest.raises(ConfigError, match="STATS_TOKEN and STATS_TOKEN_FILE are both set"):
        load_token(Settings.from_env(both))
    with pytest.raises(ConfigError, match="STATS_TOKEN must be at least 16 characters"):
        load_token(Settings.from_env({"STATS_TOKEN": "x" * 15}))
    # a copy-paste's spaces are no part of it (Authorization: Bearer cannot carry them), nor of its length
    assert load_token(Settings.from_env({"STATS_TOKEN": " an-env-token-of-some-length\n"})) == \
        b"an-env-token-of-some-length"
    for padded in ("x" * 15 + "  ", " " * 20):  # all spaces: never read as unset, which opens the figures
        with pytest.raises(ConfigError, match="STATS_TOKEN must be at least 16 characters"):
            load_token(Settings.from_env({"STATS_TOKEN": padded}))
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="STATS_TOKEN_FILE .* must be at least 16 characters"):
        load_token(Settings.from_env({"STATS_TOKEN_FILE": str(token_file)}))
    with pytest.raises(ConfigError, match="STATS_TOKEN_FILE: cannot read"):
        load_token(Settings.from_env({"STATS_TOKEN_FILE": str(tmp_path / "missing")}))
    shown = repr(Settings.from_env({"STATS_TOKEN": "an-env-token-of-some-length", "CLICK_SECRET": "a-click-key-of-some-length",
                                    "CLICK_SECRET_PREVIOUS": "an-old-click-key-of-some-length",
                                    "MONGODB": "mongodb://related:" + "a-db-word@db.example/related"}))
    assert "max_k=100" in shown and not any(secret in shown for secret in ("an-env-token", "click-key", "a-db-word"))


def test_a_relative_secret_file_is_named_resolved_from_the_working_directory(tmp_path, monkeypatch):
    """A relative CLICK_SECRET_PREVIOUS_FILE (or CLICK_SECRET_FILE, STATS_TOKEN_FILE) was named as
    given ("keys/old"): which file, read from which working directory, the owner had to guess."""
    from function.access import load_token
    from function.clicks import load_previous_secrets, load_secret

    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "old").write_text("short\n")
    previous = Settings.from_env({"CLICK_SECRET": "a-click-key-of-some-length",
                                  "CLICK_SECRET_PREVIOUS_FILE": "keys/old"})
    with pytest.raises(ConfigError) as said:
        load_previous_secrets(previous, b"a-click-key-of-some-length")
    assert f"CLICK_SECRET_PREVIOUS_FILE ({tmp_path / 'keys' / 'old'}): key 1 of 1" in str(said.value)
    with pytest.raises(ConfigError) as said:
        load_secret(Settings.from_env({"CLICK_SECRET_FILE": "keys/../keys/old"}))
    assert f"CLICK_SECRET_FILE ({tmp_path / 'keys' / 'old'}) must be" in str(said.value)
    with pytest.raises(ConfigError) as said:
        load_token(Settings.from_env({"STATS_TOKEN_FILE": "keys/missing"}))
    assert f"STATS_TOKEN_FILE: cannot read {tmp_path / 'keys' / 'missing'}: " in str(said.value)


@pytest.mark.parametrize("raw,sent", [("*", "*"), ("", ""), ("https://blog.example.com", "https://blog.example.com"),
                                      # a browser's Origin has no slash: "https://blog.example.com/" matched none
                                      (" https://blog.example.com/ ", "https://blog.example.com"),
                                      ("http://localhost:8192/", "http://localhost:8192")])
def test_cors_origin_is_sent_as_browsers_spell_an_origin(raw, sent):
    assert Settings.from_env({"CORS_ORIGIN": raw}).cors_origin == sent


@pytest.mark.parametrize("ports,message", [
    ("0", "FETCH_PORTS='0': '0' is not a port from 1 to 65535"),
    ("80,65536", "FETCH_PORTS='80,65536': '65536' is not a port from 1 to 65535"),
    ("https", "FETCH_PORTS='https': 'https' is not a port"),
    (" , ", "FETCH_PORTS=',' names no port"),
])
def test_a_bad_fetch_ports_stops_the_start_by_name(function_env, ports, message):
    from function.app import create_app

    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app({**function_env, "FETCH_PORTS": ports})


def json_log_lines(emit, name):
    """The lines a JsonFormatter writes for what ``emit(logger)`` logs, on the logger ``name`` alone."""
    from function.logformat import JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        emit(logger)
    finally:  # loggers are the process's: left as found, for the tests that come after
        logger.removeHandler(handler)
        logger.propagate = propagate
    return out.getvalue().splitlines()


def test_a_json_log_line_holds_its_traceback_and_severity():
    """Cloud Run made each line of a text traceback an entry of its own, without a severity."""
    def fail(logger):
        try:
            {}["missing"]
        except KeyError:
            logger.exception("unexpected error on %s %s", "GET", "/")

    (line,) = json_log_lines(fail, "related.test-json")
    entry = json.loads(line)
    assert entry["severity"] == "ERROR" and entry["logger"] == "related.test-json"
    assert entry["message"].startswith("unexpected error on GET /\nTraceback (most recent call last):")
    assert entry["message"].rstrip().endswith("KeyError: 'missing'")


def test_log_format_is_text_unless_set_and_refuses_another_by_name():
    from function.logformat import log_format

    assert log_format({}) == log_format({"LOG_FORMAT": " "}) == "text" and log_format({"LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT='xml' is not text or json"):
        log_format({"LOG_FORMAT": "xml"})


def test_a_json_log_line_of_arguments_that_do_not_fit_its_message_is_still_one_line(capsys):
    # logging's own report of it ("--- Logging error ---", a traceback) is text, a Cloud Run entry a line
    (line,) = json_log_lines(lambda logger: logger.error("%d events dropped", "many"), "related.test-json-args")
    entry = json.loads(line)
    assert entry["severity"] == "ERROR" and "'%d events dropped' % ('many',)" in entry["message"]
    assert "Logging error" not in capsys.readouterr().err


def test_the_default_flush_on_exit_leaves_the_exit_inside_cloud_runs_ten_seconds():
    # Cloud Run kills 10 s after SIGTERM; with Mongo unreachable the exit takes EVENT_FLUSH_SECONDS and
    # 2-3 s more (pymongo's monitors, the interpreter, the master): at 10 it was killed before saying
    # how many events were lost
    assert Settings.from_env({}).event_flush_seconds + 3 <= 10
    assert Settings.from_env({"EVENT_FLUSH_SECONDS": "20"}).event_flush_seconds == 20  # Heroku, Knative: 30 s
