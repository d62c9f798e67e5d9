"""Shared fixtures: a real Redis and a real database (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set), cleaned around each test, and the app built on them.

Redis is the one at REDIS_URL when set (CI uses a database index of its own), otherwise an
embedded server started for the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, text

from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.models import Base
from sandbox.devcerts import seed_cert_cache
from service.bootstrap import Container, install
from service.config import Settings, load_settings
from service.embedded_redis import ensure_embedded_redis, stop_embedded_redis
from tests.support.paypal import shared_signer


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    data_dir = tmp_path_factory.mktemp("redis")
    yield ensure_embedded_redis(data_dir)
    stop_embedded_redis(data_dir)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'ledger.db'}"
    )
    _reset_schema(url)
    upgrade(url)
    return url


def _reset_schema(url: str) -> None:
    """Drop whatever an earlier run left, so the migrations are tested from nothing."""
    engine = make_engine(url)
    with engine.begin() as conn:
        meta = MetaData()
        meta.reflect(conn)
        meta.drop_all(conn)
    engine.dispose()


@pytest.fixture(scope="session")
def paypal_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("paypal") / "ca.pem"
    path.write_bytes(shared_signer().ca_pem)
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, paypal_ca_file: Path
             ) -> Settings:
    return make_settings(tmp_path, database_url, redis_url, paypal_ca_file)


def make_settings(data_dir: Path, database_url: str, redis_url: str | None,
                  paypal_ca_file: Path, **overrides: object) -> Settings:
    env = {"GATEWAY_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url or "", "GATEWAY_PAYPAL_CA_FILE": str(paypal_ca_file)}
    defaults: dict[str, object] = {"drain_lock_seconds": 5, "retry_base_seconds": 1,
                                   "max_attempts": 3, "sweep_after_seconds": 0}
    return load_settings(env, **{**defaults, **overrides})


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    """The composition root on clean stores, installed for in-process RQ jobs."""
    c = Container(settings)
    signer = shared_signer()  # as if the gateway had fetched the PayPal certificate before
    seed_cert_cache(settings.data_dir / "paypal-certs", signer.cert_url, signer.cert_pem)
    _clean(c)
    install(c)
    yield c
    c.close()


def _clean(c: Container) -> None:
    redis.Redis.from_url(c.redis_url).flushdb()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with c.engine.begin() as conn:
        if c.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def other_container(tmp_path: Path, paypal_ca_file: Path) -> Iterator[object]:
    """Build extra containers (say, on a stopped Redis) that are closed after the test."""
    made: list[Container] = []

    def build(database_url: str, redis_url: str | None, **overrides: object) -> Container:
        made.append(Container(make_settings(tmp_path, database_url, redis_url, paypal_ca_file,
                                            **overrides)))
        return made[-1]

    yield build
    for c in made:
        c.close()


@pytest.fixture
def app(container: Container) -> Flask:
    from gateway.app import create_app

    return create_app(container=container)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
