"""The function's log lines: text (the default), or one JSON object a line (LOG_FORMAT=json).

Cloud Run (and other collectors that read JSON lines) keeps a text line as a message without a
severity, so an ERROR could not be told from an INFO there, and a traceback's every line became an
entry of its own. A JSON line is one entry with its ``severity`` (Python's level names are Cloud
Logging's: DEBUG, INFO, WARNING, ERROR, CRITICAL) and its ``message``, the traceback inside it.
"""

import json
import logging
from datetime import datetime, timezone

from .config import ConfigError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record):
        try:
            message = record.getMessage()
        except Exception as exc:  # %-arguments that do not fit: logging's own report would be lines of text
            message = f"log call's arguments do not fit its message ({exc}): {record.msg!r} % {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        return json.dumps({
            "severity": record.levelname,
            "message": message,
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "logger": record.name,
        }, ensure_ascii=False)


def log_format(env):
    """LOG_FORMAT: "text" (unset or blank too) or "json"; ConfigError naming it otherwise."""
    raw = (env.get("LOG_FORMAT") or "").strip()
    if raw.lower() in ("", "text", "json"):
        return raw.lower() or "text"
    raise ConfigError(f"LOG_FORMAT={raw[:50]!r} is not text or json")


def configure(env):
    """The root logger's handler (stderr), in the format LOG_FORMAT names, which is returned; a bad
    LOG_FORMAT is raised once the handler is there, to be said in text."""
    handler = logging.StreamHandler()
    # functions-framework's LOG_EXECUTION_ID puts its own handler on the root first, and basicConfig then
    # adds none: LOG_FORMAT=json had gone unapplied without a word
    taken = bool(logging.getLogger().handlers)
    try:
        name = log_format(env)
        if name == "json":
            handler.setFormatter(JsonFormatter())
    finally:  # basicConfig gives the text format only to a handler without one
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT, handlers=[handler])
    if taken and name == "json":
        logging.getLogger("related").warning(
            "LOG_FORMAT=json is not applied: the root logger has a handler already (functions-framework's, "
            "with LOG_EXECUTION_ID set?), whose format and level stay")
    return name
