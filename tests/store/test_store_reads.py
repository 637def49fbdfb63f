"""What a signed, bearer-authenticated partner call costs the store (issue 13): one read
for the bearer token, one read for what signed_requests judges (the request token's
record and its client's floor, the signing key), the nonce epoch and one write (the
nonce), counted as the SQLite statements the flagship actually runs (it was 6; on
Redis the epoch read and the nonce are one script, tests/store/test_redis_cache.py)."""

from __future__ import annotations

import pytest

from store_servers import partner, stack  # noqa: F401 (fixtures)
from wsgisec.store import open_store


@pytest.fixture
def statements(partner, store_url):
    """The statements this thread's store connection runs from now on (purges aside)."""
    partner.get("/api/items")  # the first call opens the connection (and writes the epoch)
    ran = []
    connection = open_store(store_url).backend._connection()
    connection.set_trace_callback(ran.append)
    yield ran
    connection.set_trace_callback(None)


def _kv(ran):
    return [sql for sql in ran if " kv " in f" {sql} " and not sql.lstrip().upper().startswith("DELETE")]


def test_a_signed_bearer_call_reads_three_times_and_writes_once(partner, statements):
    assert partner.get("/api/items").status_int == 200
    ran = _kv(statements)
    reads = [sql for sql in ran if sql.lstrip().upper().startswith("SELECT")]
    writes = [sql for sql in ran if sql.lstrip().upper().startswith("INSERT")]
    assert len(reads) == 3, ran
    assert len(writes) == 1 and "'nonces'" in writes[0], ran
    batched = [sql for sql in reads if "UNION ALL" in sql]
    assert len(batched) == 1
    for namespace in ("'request_tokens'", "'request_token_floors'", "'signing_keys'"):
        assert namespace in batched[0], namespace


def test_a_revoked_request_token_is_refused_from_the_batched_read(stack, partner, statements):
    from wsgisec import pipeline
    from wsgisec.signed_requests import SignedRequests

    signed = pipeline.find_layer(stack, SignedRequests)
    claims = signed.tokens.verify(partner.request_token, check_revoked=False)
    signed.tokens.revoke(claims["token_id"])
    response = partner.get("/api/items", expect_errors=True)
    assert response.status_int == 401
    assert response.json["reason"] == "unknown-key"
