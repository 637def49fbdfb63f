"""Why the allowlist refuses a request: event kinds, :class:`Refusal`, how names are shown.

Shared by the whitelist's modules (params, values, bodies); the layer turns a Refusal
into one event and one problem response (``Whitelist._refuse``).
"""

from __future__ import annotations

import re

__all__ = ["Refusal", "ROUTE_UNDECLARED", "METHOD_UNDECLARED", "MEDIA_TYPE_UNDECLARED", "INPUT_INVALID",
           "INPUT_ATTACK", "INPUT_TOO_LARGE", "XML_UNSAFE"]

# Event kinds.
ROUTE_UNDECLARED = "route-undeclared"
METHOD_UNDECLARED = "method-undeclared"
MEDIA_TYPE_UNDECLARED = "media-type-undeclared"
INPUT_INVALID = "input-invalid"
INPUT_ATTACK = "input-attack"
INPUT_TOO_LARGE = "input-too-large"
XML_UNSAFE = "xml-unsafe"


class Refusal(Exception):
    """Why a request is refused: status, event kind, where, which name, which rule."""

    def __init__(self, status: int, kind: str, location: str, name: str | None, rule: str,
                 headers=()):
        super().__init__(rule)
        self.status = status
        self.kind = kind
        self.location = location
        self.name = name
        self.rule = rule
        self.headers = list(headers)

    @property
    def detail(self) -> str:
        if self.name:
            return f'{self.location} "{self.name}": {self.rule}'
        return f"{self.location}: {self.rule}"


# Names we show back: declared names always look like this; an undeclared name that does
# not is attacker text, and we never echo attacker text.
_SHOWN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]$@:/+]{1,80}")


def _shown(name) -> str:
    name = str(name)
    return name if _SHOWN_NAME.fullmatch(name) else "(a name that is not declared)"


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


_LOCATION_NAMES = {"query": "query parameter", "path": "path parameter", "header": "header",
                   "cookie": "cookie"}


def _join_name(name, where):
    return f"{name}{where if where.startswith('[') else '.' + where}" if where else name
