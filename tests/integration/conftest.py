"""Fixtures shared by the integration tests (the stack itself is in tests/conftest.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from gravitypm_ops.vault.store import Vault
from tests.documents import every_type_docs
from tests.tls_endpoint import TLSEndpoint, make_certificate


@pytest.fixture
def small_db(stack):
    """A small MongoDB database of its own (30 documents of every BSON type, a unique index, an
    empty collection), dropped afterwards; its name is what the tests put in mongo_databases."""
    client = stack.mongo_client()
    name = f"small_src_{uuid.uuid4().hex[:6]}"
    client[name].items.insert_many(every_type_docs(30))
    client[name].items.create_index("email", unique=True, name="email_unique")
    client[name].create_collection("empty")
    yield name
    client.drop_database(name)


@pytest.fixture
def tls_endpoint(tmp_path):
    """start(days_left) -> (a live TLS endpoint on localhost, the PEM of its self-signed certificate)."""
    servers = []

    def start(days_left: float) -> tuple[TLSEndpoint, str]:
        cert, key = make_certificate(tmp_path, days_left=days_left)
        servers.append(TLSEndpoint(cert, key))
        return servers[-1], cert

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def prefixed_vault(stack, monkeypatch, request):
    """A signing vault under a prefix of its own (named after the test module), which the stack's config
    Variable names, so tasks and the console plugin read the same vault the test writes."""
    prefix = f"{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_VAR_GRAVITYPM_OPS", json.dumps({**stack.ops_config(), "vault_prefix": prefix}))
    return Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
