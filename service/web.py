"""How the web process runs: gunicorn's arguments, shared by the Procfile's ``web:`` line (kept
in sync by a test), ``gateway serve``, the demo and the ingest benchmark."""

GUNICORN_ARGS = ["--config", "python:gateway.gunicorn_conf", "--workers", "2", "--threads", "4",
                 "--timeout", "30", "--access-logfile", "-", "gateway.app:create_app()"]
