"""The escaping layer's own ini value parsers (the shared ones are in :mod:`wsgisec.settings`).

Each turns one ini string into the typed value :class:`~wsgisec.escaping.Escaping` takes,
or raises ``ValueError`` with what is expected (``settings.parse`` names the key and the
file around it).
"""

from __future__ import annotations

import codecs

from .. import settings
from .csv_formulas import FULLWIDTH

__all__ = ["SOURCES", "DEFAULT_CSP", "DEFAULT_PERMISSIONS", "free_text", "sources", "formula_prefixes",
           "frame_options", "rules_path", "charset"]

SOURCES = ("query", "form", "json", "path", "headers")
PREFIX_NAMES = {"tab": "\t", "cr": "\r", "lf": "\n", "space": " "}

DEFAULT_CSP = ("default-src 'self'; object-src 'none'; base-uri 'self'; "
               "frame-ancestors 'none'; form-action 'self'")
DEFAULT_PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def free_text(text: str) -> str:
    """Free text; lines are joined with single spaces (a CSP may span lines)."""
    return " ".join(text.split())


def sources(text: str) -> tuple[str, ...]:
    values = settings.words(text.lower())
    for value in values:
        if value not in SOURCES:
            raise ValueError("some of: " + " ".join(SOURCES))
    return values


def formula_prefixes(text: str) -> str:
    chars = []
    for word in settings.words(text):
        if word.lower() == "fullwidth":
            chars.extend(FULLWIDTH)
            continue
        char = PREFIX_NAMES.get(word.lower(), word)
        if len(char) != 1 or not char.isprintable() and char not in "\t\r\n":
            raise ValueError("single characters, tab/cr/lf or fullwidth, e.g. = + - @ tab cr")
        chars.append(char)
    return "".join(chars)


def frame_options(text: str) -> str:
    word = text.strip().upper()
    if word not in ("DENY", "SAMEORIGIN", "OFF", ""):
        raise ValueError("DENY, SAMEORIGIN or off")
    return "" if word in ("OFF", "") else word


def rules_path(text: str) -> str:
    return text.strip()


def charset(text: str) -> str:
    word = text.strip().lower()
    if word:
        try:
            codecs.lookup(word)
        except LookupError:
            raise ValueError("a charset name such as utf-8") from None
    return word
