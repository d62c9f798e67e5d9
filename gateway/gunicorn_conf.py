"""Gunicorn settings for the web process (``gunicorn --config python:gateway.gunicorn_conf``).

Logging: the app's lines, gunicorn's error log and its access log all go through
``service.logs`` (one JSON object per line unless ``LOG_FORMAT=text``). The access line keeps
gunicorn's format as its message and carries the merchant and event id the view bound.

Metrics: gunicorn's workers are separate processes, so prometheus_client adds their values up
through files in ``PROMETHEUS_MULTIPROC_DIR`` (see ``service.metrics``). That variable must be set
before a worker first imports prometheus_client: unless the operator names a directory (to share
it with the worker and clock on the same host), a fresh one is made here, in the master before it
forks, and removed when gunicorn exits. A worker that exits is marked dead so that its live
gauges stop counting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger

from service.logs import configure_logging, formatter

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made_dir: str | None = None
if not os.environ.get(_MULTIPROC_ENV):
    _made_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[_MULTIPROC_ENV] = _made_dir

configure_logging()


class GatewayLogger(Logger):  # type: ignore[misc]
    """Gunicorn's own logger, writing its error and access lines in our format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter())


logger_class = GatewayLogger


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)
