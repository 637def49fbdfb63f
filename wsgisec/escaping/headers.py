"""The safe response headers of the escaping layer, and their per-path overrides.

``common`` go on every response (``X-Content-Type-Options: nosniff``, ``Referrer-Policy``,
``X-Frame-Options``, ``Cross-Origin-Opener-Policy``, ``Permissions-Policy``; OWASP Secure
Headers project), ``document`` on HTML/XML documents (the CSP and its reporting
endpoint). ``path_overrides`` change or remove one below a path prefix, the longest
prefix winning. None overwrites a header the app set (the layer checks).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import NamedTuple

from .. import settings
from ..settings import ConfigurationError

__all__ = ["SafeHeaders"]

_CSP_NAMES = ("content-security-policy", "content-security-policy-report-only",
              "reporting-endpoints")


class _Override(NamedTuple):
    prefix: str
    name: str
    value: str | None  # None: send no such header here


def _parse_overrides(rules) -> tuple[_Override, ...]:
    found = []
    for rule in rules:
        if isinstance(rule, _Override):
            found.append(rule)
            continue
        parts = rule.split(None, 2)
        if len(parts) < 3 or not parts[0].startswith("/") or not re.fullmatch(r"[A-Za-z0-9-]+", parts[1]):
            raise ConfigurationError(
                f"path_overrides: {rule!r} is not '/prefix Header-Name value' (value 'off' "
                "sends no such header there)")
        value = parts[2].strip()
        found.append(_Override(parts[0], parts[1], None if value.lower() == "off" else value))
    # Shortest first, so that a longer (more specific) prefix is applied last and wins.
    return tuple(sorted(found, key=lambda o: len(o.prefix)))


class SafeHeaders:
    """The headers decided once at start-up; :meth:`for_path` applies the overrides."""

    def __init__(self, *, referrer_policy, frame_options, cross_origin_opener_policy,
                 permissions_policy, content_security_policy, csp_report_only, csp_report_uri,
                 path_overrides):
        self.overrides = _parse_overrides(path_overrides)
        common = [("X-Content-Type-Options", "nosniff")]
        if referrer_policy:
            common.append(("Referrer-Policy", referrer_policy))
        if frame_options:
            common.append(("X-Frame-Options", frame_options))
        if cross_origin_opener_policy:
            common.append(("Cross-Origin-Opener-Policy", cross_origin_opener_policy))
        if permissions_policy:
            common.append(("Permissions-Policy", permissions_policy))
        document = []
        if content_security_policy:
            policy = content_security_policy.rstrip("; ")
            if csp_report_uri:
                # report-uri for browsers without the Reporting API, report-to for the rest.
                policy += f"; report-uri {csp_report_uri}; report-to wsgisec-csp"
                document.append(("Reporting-Endpoints", f'wsgisec-csp="{csp_report_uri}"'))
            name = "Content-Security-Policy-Report-Only" if csp_report_only else "Content-Security-Policy"
            document.insert(0, (name, policy))
        self.common = tuple(common)
        self.document = tuple(document)
        self._cache: dict = {}

    def for_path(self, path):
        """``(common, document)`` headers for a request path (overrides applied, cached)."""
        common, document = self.common, self.document
        if not self.overrides:
            return common, document
        matched = tuple(o for o in self.overrides if settings.path_matches(path, (o.prefix,)))
        if not matched:
            return common, document
        cached = self._cache.get(matched)
        if cached is not None:
            return cached
        common, document = OrderedDict((n.lower(), (n, v)) for n, v in common), \
            OrderedDict((n.lower(), (n, v)) for n, v in document)
        for override in matched:
            key = override.name.lower()
            target = document if key in _CSP_NAMES else common
            if key.startswith("content-security-policy"):
                for name in ("content-security-policy", "content-security-policy-report-only"):
                    document.pop(name, None)
            target.pop(key, None)
            if override.value is not None:
                target[key] = (override.name, override.value)
        result = (tuple(common.values()), tuple(document.values()))
        if len(self._cache) < 1024:  # one entry per combination of prefixes
            self._cache[matched] = result
        return result
