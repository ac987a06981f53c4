"""functions-framework entry point.

    functions-framework --source function/main.py --target handle

The store is opened here, at import, in gunicorn's master process: the
workers it forks share the memory maps instead of each opening its own.
"""

import logging
import os
import sys
from pathlib import Path

# functions-framework loads this file by path; make its package importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flask  # noqa: E402
import functions_framework  # noqa: E402
from werkzeug.routing import WebsocketMismatch  # noqa: E402

from function import __version__  # noqa: E402
from function.app import create_app, error_response  # noqa: E402
from function.config import ConfigError  # noqa: E402
from function.errors import ApiError  # noqa: E402
from function import gunicorn_setup, logformat  # noqa: E402
from function.store import StoreError  # noqa: E402

try:
    log_format = logformat.configure(os.environ)
    app = create_app()
except (ConfigError, StoreError) as exc:
    # said once, in the log's form (a platform's log keeps its level): a SystemExit with the message
    # too had printed it a second time, under the log line
    logging.getLogger("related").critical("cannot start: %s", exc)
    raise SystemExit(1) from None
gunicorn_setup.install(app.settings, log_format)  # before gunicorn forks its workers
logging.getLogger("related").info("related-content %s: %s", __version__, app.describe())


@functions_framework.http
def handle(request):
    return app.handle(request)


def _every_path_is_ours():
    """Flask's own /static/<file> route (files of the working directory's static/; an OPTIONS
    answered with Flask's 200 HTML) is not ours: our files are under /assets/. Its requests go to
    the handler, which answers them as any unknown path."""
    if flask.request.endpoint == "static":
        return app.handle(flask.request)


if flask.has_app_context():  # functions-framework runs this file in its Flask app's context
    flask.current_app.before_request(_every_path_is_ours)


@functions_framework.errorhandler(404)
def _not_found(error):  # paths functions-framework answers itself (/robots.txt, /favicon.ico)
    return error_response(ApiError("not found", status=404, code="not_found"))


@functions_framework.errorhandler(400)
def _bad_request(error):  # what Flask refuses before the handler runs (e.g. a Host it cannot decode)
    if isinstance(error, WebsocketMismatch):  # a well-formed handshake: no route of ours speaks WebSocket
        return error_response(ApiError("WebSocket upgrades are not served: send a plain HTTP request "
                                       "(without Upgrade: websocket)", status=400, code="bad_request"))
    return error_response(ApiError("bad request: the request line or headers are malformed", status=400,
                                   code="bad_request"))
