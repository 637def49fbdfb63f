"""Turn PasteDeploy's string settings into typed values, or fail at start-up.

Every ini value reaches a filter factory as a string. Each middleware module declares
``SETTINGS = {key: (parser, default)}`` and its ``filter_factory`` calls :func:`parse`,
which

* rejects keys it does not know (a typo in a security setting must not silently leave a
  protection off),
* converts every value with its parser (defaults are written as ini strings too, so the
  docs, the example ini files and the code say the same thing), and
* raises one :class:`ConfigurationError` naming the filter, the file, the key, the value
  (``<redacted>`` for secrets), what was expected and how to fix it.

Parsers are plain callables ``str -> value`` that raise ``ValueError(expectation)``.

Secrets are written ``env:NAME`` (read from the environment) or ``file:PATH`` (read from a
file, trailing newline stripped); an inline value is accepted but ``wsgisec check`` warns
about it, because an ini file is copied, committed and printed far more often than an
environment variable. A parsed secret is a :class:`Secret`, whose ``repr`` and ``str``
never show the value: call :meth:`Secret.reveal` where the bytes are really needed.

PasteDeploy pitfalls worth repeating wherever ini files are documented:

* a key that is also set in ``[DEFAULT]`` never reaches a filter's own settings; share a
  value as ``[DEFAULT] wsgisec_store = ...`` plus ``get store = wsgisec_store`` (for the
  store alone, a ``[DEFAULT] store`` or ``wsgisec_store`` is also picked up, see
  :func:`default_store_url`; for any other setting :func:`parse` logs a warning);
* there are no inline comments: ``max_body = 1MB ; note`` makes the value ``1MB ; note``
  (which :func:`size` then refuses, loudly);
* ``%`` must be written ``%%``; keys are case-sensitive.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re

_log = logging.getLogger("wsgisec.settings")

__all__ = [
    "ConfigurationError",
    "Secret",
    "parse",
    "boolean",
    "integer",
    "duration",
    "size",
    "Limit",
    "limit",
    "words",
    "lines",
    "cidrs",
    "choice",
    "secret",
    "secret_list",
    "optional",
    "store_url",
    "store_timeout",
    "STORE_SETTINGS",
    "path_prefixes",
]


class ConfigurationError(Exception):
    """A setting is missing, unknown or has a value we cannot use.

    Raised while the pipeline is being built, never while serving a request.
    """


class Secret:
    """A secret value that does not show itself in logs, reprs or ``wsgisec check``."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline"):
        self._value = value
        #: ``"env"``, ``"file"`` or ``"inline"``; ``wsgisec check`` warns about inline.
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other):  # pragma: no cover - only used by tests comparing configs
        return isinstance(other, Secret) and other._value == self._value

    __hash__ = None


# -- parsers ------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def boolean(text: str) -> bool:
    """``true/yes/on/1`` or ``false/no/off/0``; any other word is an error, not False."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("true or false")


def integer(minimum: int | None = None, maximum: int | None = None):
    """A parser for a whole number within ``[minimum, maximum]``."""

    def parse_integer(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError("a whole number") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"a whole number >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"a whole number <= {maximum}")
        return value

    return parse_integer


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> int:
    """Seconds, written ``300``, ``300s``, ``15m``, ``1h`` or ``30d``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("a duration; write 300s, 15m, 1h or 30d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2,
               "gb": 1024**3, "gib": 1024**3}


def size(text: str) -> int:
    """Bytes, written ``512``, ``64KB`` or ``1MB`` (binary units: 1KB = 1024 bytes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("a size; write 512, 64KB or 1MB")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


class Limit:
    """``count`` events per ``window`` seconds, written ``60/1m`` in ini files (:func:`limit`)."""

    __slots__ = ("count", "window")

    def __init__(self, count: int, window: int):
        self.count, self.window = count, window

    def __repr__(self):
        return f"{self.count}/{self.window}s"

    __str__ = __repr__


def limit(text: str) -> Limit:
    """Settings parser: ``60/1m`` (60 per minute), ``1000/1h``; ``0/1m`` refuses all."""
    count, sep, window = text.strip().partition("/")
    try:
        number = int(count)
    except ValueError:
        number = -1
    if not sep or number < 0:
        raise ValueError("a rate such as 60/1m (count per duration)")
    seconds = duration(window)
    if seconds <= 0:
        raise ValueError("a rate such as 60/1m with a window above zero")
    return Limit(number, seconds)


def words(text: str) -> tuple[str, ...]:
    """A list separated by white space or newlines (commas are allowed too)."""
    return tuple(word for word in re.split(r"[\s,]+", text) if word)


def lines(text: str) -> tuple[str, ...]:
    """One entry per non-empty line (for rules that contain spaces)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def cidrs(text: str) -> tuple:
    """Networks such as ``10.0.0.0/8 192.168.1.7 ::1``; a bare address is a /32 (/128)."""
    networks = []
    for word in words(text):
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise ValueError(f"IP networks such as 10.0.0.0/8 or ::1 ({word!r} is not one)") from None
    return tuple(networks)


def choice(*options: str):
    """A parser that accepts exactly one of ``options`` (case-insensitive)."""

    def parse_choice(text: str) -> str:
        word = text.strip().lower()
        if word not in options:
            raise ValueError("one of " + ", ".join(options))
        return word

    return parse_choice


def optional(parser):
    """Empty text means None; anything else goes through ``parser``."""

    def parse_optional(text: str):
        return None if not text.strip() else parser(text)

    parse_optional.secret = getattr(parser, "secret", False)
    return parse_optional


def _read_secret(word: str) -> Secret:
    if word.startswith("env:"):
        name = word[4:]
        if not name:
            raise ValueError("env:NAME with the name of an environment variable")
        try:
            value = os.environ[name]
        except KeyError:
            raise ValueError(f"a secret, but environment variable {name} is not set") from None
        source = "env"
    elif word.startswith("file:"):
        path = word[5:]
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().rstrip("\r\n")
        except OSError as error:
            raise ValueError(f"a secret, but file {path} cannot be read ({error.strerror})") from None
        source = "file"
    else:
        value, source = word, "inline"
    if len(value.encode("utf-8")) < 16:
        raise ValueError("a secret of at least 16 bytes (32 random bytes recommended)")
    return Secret(value, source)


def secret(text: str) -> Secret:
    """``env:NAME``, ``file:PATH`` or (warned about) the secret itself."""
    return _read_secret(text.strip())


secret.secret = True


def secret_list(text: str) -> tuple[Secret, ...]:
    """Several secrets, oldest first: sign with the last, accept any (key rotation)."""
    values = tuple(_read_secret(word) for word in words(text))
    if not values:
        raise ValueError("at least one secret (env:NAME or file:PATH)")
    return values


secret_list.secret = True


def store_url(text: str) -> str:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``redis://host:port/db``,
    ``redis+sentinel://...`` or ``redis+cluster://...``."""
    from .store import REDIS_SCHEMES  # redis+sentinel://, redis+cluster://... (wsgisec.store.redis_connect)

    url = text.strip()
    if not (url.startswith("sqlite:///") or url.startswith(REDIS_SCHEMES)):
        raise ValueError("a store URL: sqlite:////absolute/path.sqlite or redis://host:6379/0")
    return url


def store_timeout(text: str) -> float:
    """Seconds one store call may wait: ``250ms``, ``0.5s`` or ``2`` (at most 60)."""
    from .store import parse_timeout

    return parse_timeout(text)


#: Settings that every layer declaring ``store`` also takes, declared once here
#: (:func:`parse` adds them; :func:`wsgisec.layer.layer_factory` applies them):
#: ``store_timeout`` is the store's connect/read (Redis) or busy (SQLite) timeout,
#: default 0.25s (:data:`wsgisec.store.DEFAULT_TIMEOUT`); it becomes the URL's ``?timeout=``.
STORE_SETTINGS = {"store_timeout": (optional(store_timeout), None)}


def path_prefixes(text: str) -> tuple[str, ...]:
    """URL path prefixes, each starting with ``/``; ``/healthz`` also covers ``/healthz/x``.

    ``=/oauth/token`` (a leading ``=``) is one exact path: nothing below it is covered.
    """
    prefixes = words(text)
    for prefix in prefixes:
        if not prefix.removeprefix("=").startswith("/"):
            raise ValueError(f"paths that start with / or =/ ({prefix!r} does not)")
    return prefixes


def path_matches(path: str, prefixes) -> bool:
    """True if ``path`` is one of ``prefixes`` or lies below one of them.

    ``/healthz`` matches ``/healthz`` and ``/healthz/db`` but not ``/healthzz``;
    ``=/healthz`` matches ``/healthz`` only.
    """
    for prefix in prefixes:
        if prefix.startswith("="):
            if path == prefix[1:]:
                return True
        elif path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return True
    return False


# -- the one entry point for filter factories -----------------------------------------

def parse(filter_name: str, settings: dict, local_conf: dict, global_conf: dict | None = None) -> dict:
    """Validate ``local_conf`` against ``settings`` and return typed keyword arguments.

    ``settings`` maps each key to ``(parser, default)`` where ``default`` is an ini string
    (parsed like a user's value) or ``None`` (the keyword is left out, so the class
    default applies).
    """
    where = _where(filter_name, global_conf)
    if "store" in settings:
        settings = {**settings, **STORE_SETTINGS}
    for key in sorted(set(settings) & set(global_conf or ()) - set(local_conf) - {"store"}):
        _log.warning("%s: %s is set in [DEFAULT], which PasteDeploy keeps from every filter; "
                     "it does not apply here. Write 'get %s = %s' in the filter section, or set "
                     "it there.", where, key, key, key)
    unknown = sorted(set(local_conf) - set(settings))
    if unknown:
        known = ", ".join(sorted(settings))
        raise ConfigurationError(
            f"{where}: unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; known settings are: {known}"
        )
    values = {}
    for key, (parser, default) in settings.items():
        text = local_conf.get(key, default)
        if text is None:
            continue
        if not isinstance(text, str):  # a typed value from Python callers
            values[key] = text
            continue
        try:
            values[key] = parser(text)
        except ValueError as error:
            shown = "<redacted>" if getattr(parser, "secret", False) else repr(text)
            raise ConfigurationError(f"{where}: {key} = {shown} is not valid; expected {error}") from None
    return values


def _where(filter_name: str, global_conf: dict | None) -> str:
    source = (global_conf or {}).get("__file__")
    return f"egg:wsgisec#{filter_name} ({source})" if source else f"egg:wsgisec#{filter_name}"


def config_error(filter_name: str, global_conf: dict | None, message: str) -> ConfigurationError:
    """A :class:`ConfigurationError` for a rule that spans several settings."""
    return ConfigurationError(f"{_where(filter_name, global_conf)}: {message}")


def default_store_url(global_conf: dict | None) -> str | None:
    """The store of a filter whose own section names none.

    In order: ``store`` or ``wsgisec_store`` from ``[DEFAULT]``, else an SQLite file
    beside the ini file, so an example runs with nothing configured.

    Reading ``[DEFAULT]`` is deliberate for this one key: PasteDeploy keeps a ``[DEFAULT]``
    key from every filter, so ``[DEFAULT] store = redis://...`` would otherwise leave each
    layer on its own local SQLite file, and nonces or revocations would silently stop
    being shared between hosts.
    """
    global_conf = global_conf or {}
    for key in ("store", "wsgisec_store"):
        if global_conf.get(key):
            return store_url(global_conf[key])
    here = global_conf.get("here")
    if not here:
        return None
    return "sqlite:///" + os.path.join(here, "wsgisec.sqlite")
