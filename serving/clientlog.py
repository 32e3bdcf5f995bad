"""Client errors logged as one line without the request's values.

BentoML logs every refused request as an ERROR with a traceback, and a pydantic error's text quotes the values
(personal data, and megabytes of log for a few hundred bad requests). `ClientErrorLog` rewrites those records: a 4xx
is one INFO line naming the route, the status and the fields at fault; a 503 (the store does not take writes, the
log is behind) one WARNING line with its reason. Anything else, a real 5xx, keeps its traceback.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"  # where BentoML's `log_exception` writes


class ClientErrorLog(logging.Filter):
    """A logging filter for BentoML's request logger (`install()` adds it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            where = sorted({".".join(map(str, e["loc"])) or "body" for e in error.errors(include_input=False)})
            self._rewrite(record, logging.INFO, f"400, {error.error_count()} validation error(s) at {where[:10]}")
        elif isinstance(error, BentoMLException) and error.error_code.value < 500:
            self._rewrite(record, logging.INFO, f"{error.error_code.value}, {error}")  # our messages quote no values
        elif isinstance(error, BentoMLException) and error.error_code.value == 503:
            self._rewrite(record, logging.WARNING, f"503, {error}")
        return True

    @staticmethod
    def _rewrite(record: logging.LogRecord, level: int, outcome: str) -> None:
        path, method = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = "refused %s %s: %s", (method, path, outcome)
        record.exc_info, record.exc_text = None, None


def install() -> None:
    logging.getLogger(BENTOML_REQUEST_LOGGER).addFilter(ClientErrorLog())
