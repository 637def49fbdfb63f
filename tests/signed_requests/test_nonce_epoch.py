"""Replay protection survives a store that lost its nonces (issue 14): after the nonce
rows and the epoch marker are gone (a Redis restarted without persistence or restored from
an older snapshot; an SQLite backup put back), a request captured before the loss is
refused, not accepted a second time; requests signed afterwards pass.

The loss is made for real: the test's own keys are deleted from the real Redis (only this
test's prefix, never the whole database), the rows from the SQLite file.
"""

from __future__ import annotations

import sqlite3
import time

from webtest import TestApp

from conftest import validated
from wsgisec.signed_requests import NONCES, SIGNING_KEYS
from wsgisec.signed_requests.epoch import EPOCH_KEY, EPOCH_NS, NONCE_EPOCH_RESET

from .test_signed_requests import app, creds, layer, make_layer, refusal, send, signed  # noqa: F401

RESET = "signed_requests." + NONCE_EPOCH_RESET


def lose_nonces(store) -> None:
    """What a restore that lost the used nonces (and the marker) leaves behind."""
    if hasattr(store, "client"):  # Redis: only this test's prefix
        doomed = [key for ns in (NONCES, EPOCH_NS)
                  for key in store.client.scan_iter(match=f"{store.prefix}kv:{ns}:*", count=1000)]
        assert doomed
        store.client.delete(*doomed)
    else:
        with sqlite3.connect(store.path) as connection:
            deleted = connection.execute("DELETE FROM kv WHERE ns IN (?, ?)", (NONCES, EPOCH_NS)).rowcount
        connection.close()
        assert deleted
    assert store.get(EPOCH_NS, EPOCH_KEY) is None and not list(store.keys(NONCES))


def resets(store) -> list:
    return [event for event in store.events() if event["kind"] == RESET]


def test_a_request_captured_before_the_store_lost_its_nonces_is_not_accepted_again(app, creds, store):
    captured = signed(creds)
    assert send(app, captured).status_int == 200
    refusal(send(app, captured), "replayed")
    lose_nonces(store)
    # The nonce is "new" again, but the signature predates the store's new epoch.
    response = refusal(send(app, captured), "expired")
    assert "lost its replay records" in response.json["detail"]
    (event,) = resets(store)
    assert event["severity"] == "critical"
    assert store.get(EPOCH_NS, EPOCH_KEY)["since"] >= event["time"] - 1
    # Partners sign again and go on; the new nonce is recorded as before.
    time.sleep(1.01)  # created has one-second resolution: sign in the next second
    fresh = signed(creds)
    assert send(app, fresh).status_int == 200
    refusal(send(app, fresh), "replayed")
    assert len(resets(store)) == 1


def test_a_new_store_refuses_nothing_partners_signed_within_the_window(app, creds, store):
    # The first signed request on a new store writes the marker a window back.
    response = send(app, signed(creds, created=int(time.time()) - 120))
    assert response.status_int == 200, response.text
    assert store.get(EPOCH_NS, EPOCH_KEY)["since"] < time.time() - 300
    assert resets(store) == []


def test_a_server_started_on_a_store_with_old_keys_and_no_marker_refuses_earlier_signatures(store):
    # A store that is not new (its key is older than the replay window) but has no marker:
    # it lost its nonces before this process started. A new layer cannot know which were used.
    layer = make_layer(store)
    key = layer.issue_signing_key("acme")
    store.put(SIGNING_KEYS, key["keyid"], dict(store.get(SIGNING_KEYS, key["keyid"]),
                                               created=int(time.time()) - 86400))
    token, _ = layer.issue_request_token("acme")
    creds = {"keyid": key["keyid"], "key": key["key"], "token": token}
    app = TestApp(validated(layer))
    refusal(send(app, signed(creds, created=int(time.time()) - 60)), "expired")
    assert [event["severity"] for event in resets(store)] == ["critical"]


def test_every_worker_on_the_store_uses_the_one_marker(store, creds, layer):
    # Two workers (two layers, one store): the second adopts the marker the first wrote.
    first, second = TestApp(validated(layer)), TestApp(validated(make_layer(store)))
    assert send(first, signed(creds)).status_int == 200
    marker = store.get(EPOCH_NS, EPOCH_KEY)
    captured = signed(creds)
    assert send(second, captured).status_int == 200
    assert store.get(EPOCH_NS, EPOCH_KEY) == marker
    lose_nonces(store)
    refusal(send(first, captured), "expired")   # the first worker notices and resets
    refusal(send(second, captured), "expired")  # the second reads the new marker
    assert len(resets(store)) == 1


def test_a_worker_that_saw_the_loss_keeps_the_later_epoch_when_another_wrote_first(store):
    """Race: this worker read no marker after having seen one (nonces lost), and before its
    add landed, a worker that took the store for new wrote ``now - window``. Adopting that
    older epoch would reopen the window; the later one wins, in the store too."""
    from wsgisec.signed_requests.epoch import NonceEpoch

    now, window = time.time(), 300

    class OtherWorkerWritesFirst:
        """The real store, with the other worker's add landing right after our read."""

        def __init__(self, real):
            self.real, self.raced = real, False

        def get(self, ns, key):
            found = self.real.get(ns, key)
            if ns == EPOCH_NS and not self.raced:
                self.raced = True
                self.real.add(EPOCH_NS, EPOCH_KEY, {"since": now - window})
            return found

        def __getattr__(self, name):
            return getattr(self.real, name)

    epoch = NonceEpoch(OtherWorkerWritesFirst(store), window=window)
    epoch.seen = True  # this worker had seen a marker: the store lost its data
    assert epoch.since({}, now, key_created=now) >= now
    assert store.get(EPOCH_NS, EPOCH_KEY)["since"] >= now
