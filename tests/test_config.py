"""Settings read from the environment: defaults that depend on others, and refusals that name the variable."""

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
    ({"FETCH_CONCURRENCY": "0"}, "FETCH_CONCURRENCY='0' must be between 1 and 10000"),
    ({"MAX_QUERY_BYTES": "16384"}, "MAX_QUERY_BYTES='16384' must be between 256 and 8000"),
    ({"CLIENT_HEAD_SECONDS": "2"}, "CLIENT_HEAD_SECONDS='2' must be between 5 and 600"),
    ({"CLIENT_REQUEST_SECONDS": "forever"}, "CLIENT_REQUEST_SECONDS='forever' is not a valid float"),
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
