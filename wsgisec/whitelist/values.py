"""Every string of a request value meets the text policy, or nh3 for ``format: html``.

Part of the whitelist layer (practice 2). Strings with a ``format``, ``enum`` or
``const`` are exact already; everything else, patterned strings included, goes through
:mod:`wsgisec.whitelist.text_policy`. ``format: html`` values are cleaned with nh3
(Ammonia) and the app receives the cleaned value, whose length is checked again.
"""

from __future__ import annotations

import re

from ..openapi import resolve
from . import text_policy
from .refusals import INPUT_ATTACK, INPUT_INVALID, INPUT_TOO_LARGE, Refusal, _join

__all__ = ["ValueChecks", "object_parts"]


class ValueChecks:
    """The value walk of :class:`~wsgisec.whitelist.Whitelist` (a mixin)."""


    def _walk(self, location, path, value, schema, definitions, decoded):
        """Apply the text policy (or nh3) to every string; returns the value, cleaned."""
        schema = resolve(schema, definitions)
        if isinstance(value, str):
            if len(value) > self.max_string_length and "maxLength" not in schema:
                raise Refusal(400, INPUT_TOO_LARGE, location or "request body", path or None,
                              f"is longer than {self.max_string_length} characters")
            fmt = schema.get("format")
            if fmt == "html":
                import nh3

                # Ammonia's allowlist: no script/style, no event handlers, no javascript: URLs.
                cleaned = nh3.clean(value)
                if cleaned == value:
                    return value
                self._check_cleaned_length(location, path, cleaned, schema)
                return cleaned
            if fmt or "enum" in schema or "const" in schema:
                return value  # the document names the exact values or their grammar
            # A pattern still goes through the policy: one that admits a name like
            # O'Brien also admits "x' or name is not null or 'a" (letters, blanks, a quote).
            # Values of ids and codes take the policy's fast path (~0.1 µs).
            violation = text_policy.check(value, decoded)
            if violation is not None:
                raise Refusal(400, INPUT_ATTACK, location or "request body", path or None, violation.rule)
            return value
        if isinstance(value, dict):
            properties, extra, patterns = object_parts(schema, definitions)
            new = None
            for key, item in value.items():
                sub = properties.get(key)
                if sub is None:
                    violation = text_policy.check(key, decoded)
                    if violation is not None:
                        raise Refusal(400, INPUT_ATTACK, location or "request body", path or None,
                                      "property name: " + violation.rule)
                    sub = next((s for p, s in patterns if p.search(key)), extra)
                out = self._walk(location, _join(path, key), item, sub, definitions, decoded)
                if out is not item:
                    if new is None:
                        new = dict(value)
                    new[key] = out
            return value if new is None else new
        if isinstance(value, list):
            items = schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
            new = None
            for index, item in enumerate(value):
                out = self._walk(location, _join(path, index), item, items, definitions, decoded)
                if out is not item:
                    if new is None:
                        new = list(value)
                    new[index] = out
            return value if new is None else new
        return value

    def _check_cleaned_length(self, location, path, cleaned, schema):
        """Cleaning can grow a value (``&`` -> ``&amp;``, ``rel="noopener noreferrer"``
        added) or shrink it (a ``<script>`` dropped): the app gets the cleaned value, so
        that is what the declared length limits must hold for."""
        where = location or "request body", path or None
        longest = schema.get("maxLength", self.max_string_length)
        if len(cleaned) > longest:
            raise Refusal(400, INPUT_TOO_LARGE, *where, f"is longer than {longest} characters once cleaned")
        shortest = schema.get("minLength", 0)
        if len(cleaned) < shortest:
            raise Refusal(400, INPUT_INVALID, *where, f"is shorter than {shortest} characters once cleaned")


def object_parts(schema, definitions):
    """(properties, schema-for-other-keys, [(regex, schema)]) of an object schema.

    ``allOf``/``anyOf``/``oneOf`` branches contribute their properties, so the text policy
    still reaches every string; a key no branch declares is checked as free text.
    """
    properties = dict(schema.get("properties") or {})
    extra = schema.get("additionalProperties", {})
    patterns = [(re.compile(p), s) for p, s in (schema.get("patternProperties") or {}).items()]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or ():
            branch = resolve(branch, definitions)
            for name, sub in (branch.get("properties") or {}).items():
                properties.setdefault(name, sub)
    if extra is True:
        extra = {}
    return properties, extra, patterns
