"""Shared fixtures: the store over every backend, the example pipelines, WSGI validation.

* ``store``: parametrized over ``sqlite`` (a fresh file) and ``redis`` (the real server at
  ``WSGISEC_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``, under a key prefix of
  its own that is deleted afterwards, so concurrent test runs never see each other's
  keys). Without a reachable server the redis half is *skipped with a reason*, never
  faked.
* ``load_example(ini, **global_conf)``: ``paste.deploy.loadapp`` on ``examples/<ini>`` with
  the store redirected to a temporary file, exactly as ``wsgisec serve`` loads it.
* ``validated(app)``: ``wsgiref.validate.validator`` around an app, for WebTest;
  ``ClosingBody``: an app iterable that records ``close()``.
* ``CHROMIUM``, ``CHROMIUM_ARGS``, ``needs_chromium``: Debian's chromium for Playwright
  (never ``playwright install``); tests marked ``needs_chromium`` skip, saying why,
  where it is not installed. ``browser``: one Chromium for the whole session (each test
  opens its own context, so no state is shared); ``settled(page)`` waits until the page's
  images have loaded or failed and two frames have rendered, the events after which a
  payload that is going to run has run (no fixed timeouts).
* ``wsgi_server(app)``: the app on waitress in a thread on an ephemeral loopback port;
  returns the base URL and stops the server (keep-alive connections included) when the
  test ends, so no thread is left to a join timeout.
* Client secrets are hashed with :data:`TEST_CRYPT_CONTEXT` (argon2id, 1 MiB, one pass)
  in every in-process ``TokenAuth`` and ``ClientRegistry`` that does not name its own
  ``crypt_context``: the production default (64 MiB, 3 passes, 4 lanes) costs 0.1-0.9 s a
  hash or check on this shared 2-core machine, and most tests create or check a secret.
  Only the keyword defaults change, for the test run; a test about the real parameters
  is marked ``real_hashing`` and gets them back. Servers started as subprocesses
  (``wsgisec serve``, gunicorn, uwsgi) always use the production default.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sys
import threading
import uuid
from wsgiref.validate import validator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REDIS_URL = os.environ.get("WSGISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
skip_without_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"browser test: no chromium at {CHROMIUM} (apt-get install chromium)")
needs_chromium = [pytest.mark.browser, skip_without_chromium]


class ThreadedServer:
    """A WSGI app on waitress in a daemon thread, on ``127.0.0.1:<ephemeral port>``."""

    def __init__(self, app, **adjustments):
        from waitress.server import create_server

        adjustments.setdefault("threads", 4)
        self.server = create_server(app, host="127.0.0.1", port=0, **adjustments)
        self.port = self.server.effective_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True, name=f"waitress-{self.port}")
        self._thread.start()

    def stop(self):
        from waitress import wasyncore

        # The loop runs while its map holds a dispatcher: close them all, keep-alive
        # client connections included, from inside the loop thread.
        server = self.server
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(5)
        assert not self._thread.is_alive(), "the test server did not stop"


@pytest.fixture
def wsgi_server():
    """``wsgi_server(app, **waitress_adjustments) -> ThreadedServer`` (``.url``, ``.port``)."""
    started = []

    def start(app, **adjustments):
        started.append(ThreadedServer(app, **adjustments))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def playwright():
    """Playwright's driver, once per session: a process may hold only one sync instance."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser test: no chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright):
    """One headless Debian chromium for the session (skips, saying why, without it)."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def chromium_with(playwright):
    """``chromium_with(*extra_flags)``: a Chromium of its own for a test that needs more
    flags than ``CHROMIUM_ARGS`` (closed when the test ends)."""
    launched = []

    def launch(*extra):
        launched.append(playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(extra)))
        return launched[-1]

    yield launch
    for chromium in launched:
        chromium.close()


_SETTLED = """() => new Promise(resolve => {
  const frames = () => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true)));
  const images = [...(document.images || [])].filter(image => !image.complete);
  let left = images.length;
  if (!left) return frames();
  const one = () => { if (--left === 0) frames(); };
  for (const image of images) {
    image.addEventListener('load', one);
    image.addEventListener('error', one);
  }
})"""


def settled(page):
    """Wait for the events after which a page's scripts and handlers have all had their
    turn: every image loaded or failed (``onerror`` payloads), then two rendered frames
    (``autofocus``/``onfocus``)."""
    page.evaluate(_SETTLED)


def redis_available() -> str | None:
    """None if the test Redis answers, else the reason it does not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install wsgisec[redis])"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"no Redis server at {REDIS_URL} ({type(error).__name__}); set WSGISEC_TEST_REDIS_URL"
    return None


def redis_prefix_url(base: str = REDIS_URL) -> tuple[str, str]:
    """``base`` with a key prefix of the test's own (``?prefix=``), and that prefix."""
    prefix = f"wsgisec-test-{uuid.uuid4().hex}:"
    return f"{base}{'&' if '?' in base else '?'}prefix={prefix}", prefix


def drop_prefix(url: str, prefix: str) -> None:
    """Delete the keys a test wrote under ``prefix`` (never the whole database)."""
    from wsgisec.store import open_backend

    backend = open_backend(url)
    client = backend.client
    for name in list(client.scan_iter(match=prefix + "*", count=1000)):
        client.delete(name)  # one by one: on a Cluster the names live in several slots
    backend.close()


@contextlib.contextmanager
def open_test_store(kind: str, tmp_path, redis_url: str | None = None):
    """A store backend for one test: SQLite in ``tmp_path``, or Redis (the test server, or
    ``redis_url``: a local Cluster or Sentinel) under a key prefix emptied afterwards."""
    if kind == "sqlite":
        from wsgisec.store.sqlite import SQLiteStore

        backend = SQLiteStore(str(tmp_path / "store.sqlite"))
        yield backend
        backend.close()
        return
    if redis_url is None:
        reason = redis_available()
        if reason:
            pytest.skip(f"Redis store tests need a real server: {reason}")
        redis_url = REDIS_URL
    from wsgisec.store.redis import RedisStore

    url, prefix = redis_prefix_url(redis_url)
    backend = RedisStore.from_url(url)
    try:
        yield backend
    finally:
        backend.close()
        drop_prefix(url, prefix)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    with open_test_store(request.param, tmp_path) as backend:
        yield backend


def init_store(config) -> None:
    """``wsgisec store init --config CONFIG``, as an operator runs it before the first verb
    on a new deployment (the other operator verbs never create a store)."""
    import io

    from wsgisec.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["store", "init", "--config", str(config)]) == 0


@pytest.fixture
def store_url(tmp_path):
    """A fresh SQLite store URL for an example pipeline."""
    return "sqlite:///" + str(tmp_path / "wsgisec.sqlite")


@pytest.fixture
def load_example(store_url):
    from wsgisec import pipeline

    def load(ini: str, name: str = "main", **global_conf):
        global_conf.setdefault("wsgisec_store", store_url)
        return pipeline.load(str(EXAMPLES / ini), name=name, global_conf=global_conf)

    return load


class ClosingBody:
    """An app iterable that records ``close()`` (PEP 3333: every layer must call it) and
    can fail after ``fail_after`` chunks, as a legacy app's generator might."""

    def __init__(self, chunks, fail_after=None):
        self.chunks, self.fail_after, self.closed = list(chunks), fail_after, False

    def __iter__(self):
        for number, chunk in enumerate(self.chunks):
            if self.fail_after is not None and number == self.fail_after:
                raise IOError("disk /var/lib/app/data.db failed")
            yield chunk

    def close(self):
        self.closed = True


def exc_info_app(environ, start_response):
    """Starts a 200, then replaces it with a 500 through ``start_response(..., exc_info)``
    (PEP 3333), as frameworks do for an error page."""
    start_response("200 OK", [("Content-Type", "text/html")])
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"error"]


def validated(app):
    """``wsgiref.validate`` around ``app``: any breach of PEP 3333 raises in the test."""
    return validator(app)


def _test_crypt_context():
    from passlib.context import CryptContext

    return CryptContext(schemes=["argon2", "pbkdf2_sha256"], deprecated=["pbkdf2_sha256"],
                        argon2__memory_cost=1024, argon2__rounds=1, argon2__parallelism=1)


TEST_CRYPT_CONTEXT = _test_crypt_context()


def _hashing_defaults():
    """The keyword defaults that choose the client-secret hashing of in-process layers."""
    from wsgisec.token_auth import TokenAuth
    from wsgisec.token_auth.clients import ClientRegistry

    return [(TokenAuth.__init__, "crypt_context"), (ClientRegistry.__init__, "context")]


@pytest.fixture(scope="session", autouse=True)
def _cheap_client_hashing():
    """Session-wide (so module-scoped servers get it too): see the module docstring."""
    saved = [(function, name, function.__kwdefaults__[name]) for function, name in _hashing_defaults()]
    for function, name, _real in saved:
        function.__kwdefaults__[name] = TEST_CRYPT_CONTEXT
    yield saved
    for function, name, real in saved:
        function.__kwdefaults__[name] = real


@pytest.fixture(autouse=True)
def _real_hashing_when_marked(request, _cheap_client_hashing):
    """A test marked ``real_hashing`` runs with the production hashing defaults."""
    if request.node.get_closest_marker("real_hashing") is None:
        yield
        return
    for function, name, real in _cheap_client_hashing:
        function.__kwdefaults__[name] = real
    try:
        yield
    finally:
        for function, name, _real in _cheap_client_hashing:
            function.__kwdefaults__[name] = TEST_CRYPT_CONTEXT


@pytest.fixture(autouse=True)
def _pristine_legacy_items():
    """The Flask example keeps posted items in a module-level list (it is a legacy app);
    every test starts from the items it shipped with, whatever ran before in the worker."""
    legacy = sys.modules.get("flask_legacy.app")
    if legacy is not None:
        legacy.ITEMS[:] = [dict(item) for item in _SHIPPED_ITEMS]
    yield


def _shipped_items():
    import flask_legacy.app as legacy  # examples/ is on sys.path (setup.cfg pythonpath)

    return [dict(item) for item in legacy.ITEMS]


_SHIPPED_ITEMS = _shipped_items()


# -- the suite-wide secret-leak audit (WSGISEC_LEAK_AUDIT=1, issue 14) -----------------
#
# Off by default. With WSGISEC_LEAK_AUDIT=1 every secret the suite mints in-process is
# recorded as it is minted (client secrets, access and refresh tokens, request tokens,
# signing keys, every HMAC signature computed, browser CSRF tokens) and so is every
# Authorization, Proxy-Authorization and Cookie value a WebTest request sends; the root
# logger is set to DEBUG and every record (message and traceback) is scanned at the end of
# each test for the secrets known so far. A hit fails that test's teardown, naming the
# logger. Records of the tests' own HTTP clients (urllib3 logs request lines, query
# tokens included) are not the server's log and are skipped. Secrets minted in other
# processes (tests that run `wsgisec serve`) are not seen.

LEAK_AUDIT = os.environ.get("WSGISEC_LEAK_AUDIT") == "1"
_CLIENT_SIDE = ("urllib3", "requests", "charset_normalizer", "hypothesis", "asyncio", "playwright")
_RUNS = __import__("re").compile(r"[A-Za-z0-9_+/-]{16,}")


class _LeakAudit(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.secrets, self.texts, self.scanned, self.leaks = set(), [], 0, []

    def keep(self, value):
        if isinstance(value, str) and len(value.rstrip("=")) >= 16:
            self.secrets.add(value.rstrip("="))

    def emit(self, record):
        if not record.name.startswith(_CLIENT_SIDE):
            text = record.getMessage()
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            self.texts.append((record.name, text))

    def scan(self):
        """(logger, secret prefix) for every record since the last scan that holds a secret."""
        found = [(name, run[:6] + "…") for name, text in self.texts for run in _RUNS.findall(text)
                 if run in self.secrets]
        self.scanned += len(self.texts)
        self.texts = []
        self.leaks += found
        return found


def _install_leak_audit(audit):
    """Wrap every minting function, wherever a wsgisec module imported it."""
    import base64
    import functools

    import webtest

    import wsgisec.httpsig
    import wsgisec.signed_requests.csrf
    import wsgisec.signed_requests.keys
    import wsgisec.signed_requests.request_tokens
    import wsgisec.token_auth.clients
    import wsgisec.token_auth.endpoints
    from wsgisec import credentials

    def recording(original, pick):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            for value in pick(result):
                audit.keep(value)
            return result
        return wrapper

    functions = [(wsgisec.token_auth.clients.new_secret, lambda r: [r]), (credentials.new_token, lambda r: [r]),
                 (wsgisec.signed_requests.keys.issue_signing_key, lambda r: [r["key"], base64.b64decode(r["key"]).hex()]),
                 (wsgisec.httpsig.hmac_sha256, lambda r: [base64.b64encode(r).decode(), r.hex()])]
    for original, pick in functions:
        wrapper = recording(original, pick)
        for module in [m for name, m in sys.modules.items() if name.startswith("wsgisec")]:
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, wrapper)
    tokens = wsgisec.signed_requests.request_tokens.RequestTokens
    tokens.issue = recording(tokens.issue, lambda r: [r[0]])
    csrf = wsgisec.signed_requests.csrf.BrowserCSRF
    csrf.issue = recording(csrf.issue, lambda r: [r])
    do_request = webtest.TestApp.do_request

    def sent(self, req, *args, **kwargs):
        for name in ("Authorization", "Proxy-Authorization"):
            value = req.headers.get(name)
            if value:
                audit.keep(value.split()[-1])
        for value in req.cookies.values():
            audit.keep(value)
        return do_request(self, req, *args, **kwargs)

    webtest.TestApp.do_request = sent


def pytest_configure(config):
    if LEAK_AUDIT:
        config._wsgisec_leak_audit = audit = _LeakAudit()
        _install_leak_audit(audit)
        logging.getLogger().addHandler(audit)
        logging.getLogger().setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _no_secret_in_the_log(request):
    yield
    audit = getattr(request.config, "_wsgisec_leak_audit", None)
    if audit is not None:
        found = audit.scan()
        if found:
            pytest.fail(f"secret-leak audit: secrets in log records of {sorted(set(found))}", pytrace=False)


def pytest_sessionfinish(session):
    audit = getattr(session.config, "_wsgisec_leak_audit", None)
    if audit is not None:
        summary = {"secrets": len(audit.secrets), "records": audit.scanned, "leaks": len(audit.leaks)}
        if hasattr(session.config, "workeroutput"):  # an xdist worker: tell the controller
            session.config.workeroutput["leak_audit"] = summary
        elif summary["records"] or summary["secrets"]:  # without xdist (the controller runs no test)
            session.config.__dict__.setdefault("_wsgisec_leak_summary", []).append(summary)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    summary = getattr(node, "workeroutput", {}).get("leak_audit")
    if summary:
        node.config.__dict__.setdefault("_wsgisec_leak_summary", []).append(summary)


def pytest_terminal_summary(terminalreporter, config):
    summaries = getattr(config, "_wsgisec_leak_summary", None)
    if summaries:
        total = {key: sum(s[key] for s in summaries) for key in ("secrets", "records", "leaks")}
        terminalreporter.write_line(f"secret-leak audit: {total['secrets']} secrets recorded, "
                                    f"{total['records']} log records scanned, {total['leaks']} leaks")
