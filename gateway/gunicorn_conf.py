"""Gunicorn settings for the web process (``gunicorn --config python:gateway.gunicorn_conf``).

Logging: the app's lines, gunicorn's error log and its access log all go through
``service.logs`` (one JSON object per line unless ``LOG_FORMAT=text``). The access line keeps
gunicorn's format as its message and carries the merchant and event id the view bound. It never
carries what a client may have put a secret in: the request line and the referrer lose their
query string (a token in ``?token=`` stays out of the log), the basic-auth user is ``-``, and
any request or response header or environ value a custom format names is blanked when its name
suggests a credential. Each web process also blanks every configured secret and token
(admin tokens, Stripe webhook secrets and API keys, PayPal credentials, the metrics token)
wherever it appears in a line, the user agent included.

Database waits: each web process waits for the SQLite write lock at most GATEWAY_WEB_DB_WAIT
seconds (default 3, and never more than GATEWAY_DB_BUSY_TIMEOUT), so that a delivery meeting a
locked database answers 503 long before gunicorn's 30-second timeout kills the worker.

Embedded Redis and the control socket: without REDIS_URL the master starts the embedded Redis
before it forks and counts as one of its users, so the server stops when the last of web, worker
and clock exits. Gunicorn's control socket (``gunicornc``) is off: its default path is shared by
every gunicorn of the user.

Metrics: gunicorn's workers are separate processes, so prometheus_client adds their values up
through files in ``PROMETHEUS_MULTIPROC_DIR`` (see ``service.metrics``). That variable must be set
before a worker first imports prometheus_client: unless the operator names a directory (to share
it with the worker and clock on the same host), a fresh one is made here, in the master before it
forks, and removed when gunicorn exits. A worker that exits is marked dead so that its live
gauges stop counting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, cast

from gunicorn.glogging import Logger

from service.logs import configure_logging, formatter

if TYPE_CHECKING:
    from service.config import Settings

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made_dir: str | None = None
if not os.environ.get(_MULTIPROC_ENV):
    _made_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[_MULTIPROC_ENV] = _made_dir

configure_logging()


# Headers (and their environ keys) that may carry a credential, by name.
_CREDENTIAL_NAME = re.compile(r"auth|cookie|token|secret|key|sig|pass", re.IGNORECASE)
# Environ values that hold the query string, whole or in a URI.
_URI_ENVIRON = ("{query_string}e", "{raw_uri}e", "{request_uri}e", "{http_referer}e")


class GatewayLogger(Logger):
    """Gunicorn's own logger, writing its error and access lines in our format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter())

    # The stub types atoms as a TypedDict of the fixed atoms only; gunicorn's dict also has a
    # {header}i, {header}o and {variable}e key per header and variable, which this rewrites.
    def atoms(self, resp: Any, req: Any, environ: MutableMapping[str, Any],  # type: ignore[override]
              request_time: Any) -> dict[str, Any]:
        """Gunicorn's access-line atoms, without what may carry a secret (see the module)."""
        atoms = cast(dict[str, Any], super().atoms(resp, req, environ, request_time))
        atoms["r"] = " ".join((str(environ.get("REQUEST_METHOD", "-")),
                               _without_query(str(environ.get("RAW_URI", "-"))),
                               str(environ.get("SERVER_PROTOCOL", "-"))))
        atoms["q"] = "-"
        atoms["u"] = "-"
        atoms["f"] = _without_query(str(atoms.get("f", "-")))
        for name in _URI_ENVIRON:
            if name in atoms:
                atoms[name] = "-" if name == "{query_string}e" else _without_query(
                    str(atoms[name]))
        for name in list(atoms):  # {header}i, {header}o, {variable}e
            if name.startswith("{") and _CREDENTIAL_NAME.search(name):
                atoms[name] = "[redacted]"
        return atoms


def _without_query(uri: str) -> str:
    """``uri`` up to its query string or fragment."""
    return uri.split("?", 1)[0].split("#", 1)[0]


logger_class = GatewayLogger
# No control socket: gunicorn's default is one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl) that every gunicorn of that user would share; nothing here uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Before any worker starts: refuse a PayPal CA file that cannot serve, and a database that
    is not at the schema this code needs (the release step, ``gateway db upgrade``, migrates; a
    web process never does). A database
    that does not answer yet is left to /readyz: the web tier answers 503 until it does."""
    from sqlalchemy.exc import OperationalError

    from ledger.migrate import DatabaseNotAtHead, require_head
    from service.config import check_ca_file, load_settings
    from service.errors import ConfigError

    try:
        settings = load_settings()
        if settings.paypal_ca_file is not None:
            check_ca_file(settings.paypal_ca_file)
        require_head(settings.database_url)
    except (ConfigError, DatabaseNotAtHead) as exc:
        server.log.error("%s", exc)
        sys.exit(2)
    except OperationalError:
        server.log.warning("the database does not answer yet; /readyz says 503 until it does")
    _use_embedded_redis(server, settings)
    _require_persistent_redis(server, settings)


def _require_persistent_redis(server: Any, settings: Settings) -> None:
    """With the Redis inbox, Redis holds acknowledged events: refuse to start a live merchant
    on one that may lose them (see workers.intake.check_persistence)."""
    from redis import Redis

    from service.embedded_redis import embedded_url
    from service.errors import ConfigError
    from workers.intake import check_persistence

    url = settings.redis_url or embedded_url(settings.data_dir)
    client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        check_persistence(settings, client)
    except ConfigError as exc:
        server.log.error("%s", exc)
        sys.exit(2)
    finally:
        client.close()


def _use_embedded_redis(server: Any, settings: Settings) -> None:
    """Without REDIS_URL, start the embedded Redis before the workers fork, with the master as
    one of its users: it stops when the last of web, worker and clock exits (see
    service.embedded_redis). One that cannot start is left to /readyz, which says 503."""
    from service.embedded_redis import ensure_embedded_redis
    from service.errors import ConfigError

    if settings.redis_url is None:
        try:
            ensure_embedded_redis(settings.data_dir)
        except (ConfigError, OSError, subprocess.SubprocessError) as exc:
            server.log.warning("the embedded Redis did not start: %s", exc)


def post_fork(server: Any, worker: Any) -> None:
    """In each web worker, before it loads the app: bound its database waits and name the
    secrets its log lines must never show."""
    from ledger.db import limit_waits
    from service.config import load_settings
    from service.errors import ConfigError
    from service.logs import redact_values

    try:
        settings = load_settings()
    except ConfigError:
        return  # the app's own start-up reports it, and the worker does not boot
    limit_waits(settings.web_db_wait)
    secrets = [settings.metrics_token]
    for merchant in settings.merchants.values():
        secrets += [merchant.admin_token, *merchant.stripe.webhook_secrets,
                    merchant.stripe.api_key, merchant.paypal.client_id,
                    merchant.paypal.client_secret]
    redact_values(s for s in secrets if s)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated


def on_exit(server: Any) -> None:
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)
