"""Alerts: thresholds per event-kind pattern and window, on a logger and to a webhook.

A rule is one line ``PATTERN COUNT/WINDOW [per address|per client]``, e.g.
``token_auth.* 20/5m per address`` (20 token_auth refusals from one address within
5 minutes). Every layer's events pass through the ``wsgisec.events`` logger; the
:class:`AlertWatcher` installed by the reports layer counts the matching ones in the store
(``store.incr``, so every worker process adds to the same count) and raises the alert
exactly once per window and group, when the count reaches the threshold:

* one JSON line on the ``wsgisec.alerts`` logger (level WARNING, CRITICAL for a rule
  whose triggering event was critical), and
* when ``alert_webhook`` is set, a POST of the same JSON from a background thread, with
  a timeout and retries with backoff, so a slow receiver never slows a request. The
  payload names the rule, the group (address or client id), the count, the kind and the
  incident id of the event that crossed the threshold: never an event's ``detail`` (a
  report's text is a stranger's) and never a secret. With ``alert_webhook_secret`` the
  body is signed (``X-Wsgisec-Signature: sha256=<hex HMAC of the body>``) so the
  receiver can tell our alerts from forged ones.

One watcher per process: a process serves one pipeline, and the last reports layer
built with alerts is the one that watches (so an event is never counted twice). The
``wsgisec.events`` logger must pass INFO records for info-level refusals to count; when
its level is unset, installing a watcher sets it to INFO.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request

from .. import events
from ..store import StoreUnavailable, redact_url

__all__ = ["Rule", "rules", "AlertWatcher", "Webhook", "install", "alert_log"]

alert_log = logging.getLogger("wsgisec.alerts")
NAMESPACE = "reports.alerts"


class Rule:
    __slots__ = ("pattern", "count", "window", "per", "text")

    def __init__(self, pattern: str, count: int, window: int, per: str | None, text: str):
        self.pattern, self.count, self.window, self.per, self.text = pattern, count, window, per, text

    def __repr__(self):
        return self.text

    __str__ = __repr__


def rules(text: str) -> tuple[Rule, ...]:
    """Settings parser: one rule per line (see the module docstring)."""
    from .timeline import limit

    found = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        words = line.split()
        per = None
        if len(words) == 4 and words[2] == "per" and words[3] in ("address", "client"):
            per = words[3]
        elif len(words) != 2:
            raise ValueError(f"rules such as 'token_auth.* 20/5m per address' ({line!r} is not one)")
        if not all(ch.isalnum() or ch in "._-*?" for ch in words[0]):
            raise ValueError(f"a kind pattern of letters, digits and . _ - * ? ({words[0]!r})")
        rate = limit(words[1])
        if rate.count < 1:
            raise ValueError(f"a threshold of at least 1 ({line!r})")
        found.append(Rule(words[0], rate.count, rate.window, per, " ".join(words)))
    return tuple(found)


class Webhook:
    """POST alerts to ``url`` from one daemon thread (started per process, after a fork)."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, secret=None,
                 backoff: float = 0.5, max_queue: int = 100):
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self._secret = secret
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._pid = None
        self._lock = threading.Lock()

    def send(self, payload: dict) -> None:
        self._start()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            events.ops_log.error("alert webhook queue full: an alert was logged but not sent")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was delivered or given up (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _start(self):
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="wsgisec-alert-webhook", daemon=True).start()

    def _run(self):
        while True:
            payload = self._queue.get()
            try:
                self._deliver(payload)
            finally:
                self._queue.task_done()

    def _deliver(self, payload: dict) -> bool:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "wsgisec-alerts"}
        if self._secret is not None:
            key = self._secret.reveal().encode("utf-8")
            headers["X-Wsgisec-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                problem = type(error).__name__
        events.ops_log.error("alert webhook %s failed after %d attempts (%s)",
                             redact_url(self.url), self.retries + 1, problem)
        return False


class AlertWatcher:
    """Counts matching events in ``store`` and raises alerts (see the module docstring)."""

    def __init__(self, store, rule_set, webhook: Webhook | None = None):
        self.store, self.rules, self.webhook = store, tuple(rule_set), webhook

    def observe(self, event: dict) -> list[dict]:
        raised = []
        kind = event.get("kind") or ""
        for number, rule in enumerate(self.rules):
            if not fnmatch.fnmatchcase(kind, rule.pattern):
                continue
            group = event.get("remote_addr" if rule.per == "address" else "client_id") if rule.per else "*"
            if group is None:
                continue
            key = f"{number}:{rule.per or 'all'}:{group}"
            # Exactly one worker sees the count reach the threshold: one alert per window.
            if self.store.incr(NAMESPACE, key, rule.window) == rule.count:
                raised.append(self._raise(rule, group, event))
        return raised

    def _raise(self, rule: Rule, group: str, event: dict) -> dict:
        alert = {"alert": rule.text, "pattern": rule.pattern, "threshold": rule.count,
                 "window": rule.window, "per": rule.per, "group": group, "kind": event.get("kind"),
                 "incident_id": event.get("incident_id"), "time": time.time()}
        level = logging.CRITICAL if event.get("severity") == "critical" else logging.WARNING
        alert_log.log(level, "%s", json.dumps(alert, sort_keys=True, separators=(",", ":")))
        if self.webhook is not None:
            self.webhook.send(alert)
        return alert


class _EventsHandler(logging.Handler):
    """Feeds each ``wsgisec.events`` JSON line to the process's active watcher."""

    def emit(self, record):
        watcher = _active
        if watcher is None:
            return
        try:
            event = json.loads(record.getMessage())
        except ValueError:
            return
        if isinstance(event, dict):
            try:
                watcher.observe(event)
            except StoreUnavailable as error:
                events.ops_log.error("alerts: store unavailable: %s", type(error).__name__)


_active: AlertWatcher | None = None
_handler = _EventsHandler(level=logging.INFO)
_install_lock = threading.Lock()


def install(watcher: AlertWatcher | None) -> None:
    """Make ``watcher`` the process's alert watcher (None: no alerts)."""
    global _active
    with _install_lock:
        _active = watcher
        source = logging.getLogger("wsgisec.events")
        if _handler not in source.handlers:
            source.addHandler(_handler)
        if watcher is not None and source.level == logging.NOTSET and not source.isEnabledFor(logging.INFO):
            source.setLevel(logging.INFO)
