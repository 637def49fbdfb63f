"""``/.well-known/security.txt`` (RFC 9116), built from the layer's settings.

RFC 9116 §2.5.3 requires ``Contact`` and §2.5.5 ``Expires``. A file that lapses is
worse than none (researchers are told to distrust it), so ``Expires`` is *rolling*: each
response says "now + security_expires", and the file never expires while the service
runs. §2.5.5 recommends less than a year ahead; the default is 30 days.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["render", "PATH"]

#: RFC 9116 §3: the file lives under /.well-known/ (RFC 8615).
PATH = "/.well-known/security.txt"


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(*, contact, expires_in, encryption=(), policy=(), languages=(), canonical=(),
           acknowledgments=(), hiring=(), now=None) -> bytes:
    """The file's bytes; fields in the order of RFC 9116 §2.5, one line per value."""
    now = time.time() if now is None else now
    lines = [f"Contact: {value}" for value in contact]
    lines.append(f"Expires: {_rfc3339(now + expires_in)}")
    lines.extend(f"Encryption: {value}" for value in encryption)
    lines.extend(f"Acknowledgments: {value}" for value in acknowledgments)
    if languages:
        lines.append("Preferred-Languages: " + ", ".join(languages))
    lines.extend(f"Canonical: {value}" for value in canonical)
    lines.extend(f"Policy: {value}" for value in policy)
    lines.extend(f"Hiring: {value}" for value in hiring)
    return ("\n".join(lines) + "\n").encode("utf-8")


def uri_list(text_values) -> tuple[str, ...]:
    """Check that each value is an absolute URI (RFC 9116 §2.5: Contact, Policy ... are URIs)."""
    for value in text_values:
        scheme, sep, rest = value.partition(":")
        if not sep or not rest or not scheme.isalpha() or any(ch in value for ch in "\r\n <>\""):
            raise ValueError(f"absolute URIs such as mailto:security@example.com or "
                             f"https://example.com/security ({value!r} is not one)")
    return tuple(text_values)
