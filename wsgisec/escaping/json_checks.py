"""The JSON checks of a held response: structure (:mod:`.structure`) and schema
(:mod:`.response_schema`), on one parse of the body, and the reflection events of
escaped JSON. A mixin of :class:`wsgisec.escaping.rewrite._Response` (it uses the
response's ``layer``, ``environ``, ``request_body``, ``schema``, ``held`` and ``_mime``).
"""

from __future__ import annotations

from .. import events
from .candidates import may_hold, safe_name
from .reflection import Finding
from .response_schema import RESPONSE_SCHEMA, violation
from .structure import (EMPTY, RESPONSE_INVALID, STRUCTURAL_CHARS, STRUCTURE_INJECTION, Refused as _Refused,
                        injected, is_structural, parse_json)

__all__ = ["JSONChecks", "UNPARSED"]

_log = events.logger_for("escaping")

#: The body was not parsed yet (``check_structure`` is off).
UNPARSED = object()


class JSONChecks:
    """Checks on a held JSON response; they raise ``Refused`` when it must not go out."""

    __slots__ = ()

    def _check_json(self, body: bytes):
        """Refuse (``_Refused``) a JSON response that does not parse, or that carries a
        request value outside a single string token (see :mod:`.structure`); return the
        parsed value (:data:`.structure.EMPTY` for an empty body)."""
        value, problem = parse_json(body)
        if problem:
            raise _Refused(RESPONSE_INVALID, "the app's JSON response does not parse; masked",
                           {"check": problem, "media_type": self._mime()})
        layer = self.layer
        # Most requests send nothing that could forge JSON: then nothing is parsed.
        values = layer.candidates(self.environ, self.request_body, rule=is_structural) \
            if may_hold(self.environ, self.request_body, STRUCTURAL_CHARS, sources=layer.reflect_sources,
                        header_keys=layer.header_keys) else ()
        found = injected(body, values) if values else ()
        if found:
            first = found[0]
            raise _Refused(STRUCTURE_INJECTION,
                           "a request value changed the structure of a JSON response; refused",
                           {"source": first.source, "parameter": safe_name(first.name),
                            "values": len(found), "media_type": self._mime()})
        return value

    def _check_schema(self, body: bytes, value):
        """Compare the parsed response with its schema (:mod:`.response_schema`): report
        a failure, or refuse the response (``_Refused``) with ``response_schemas = enforce``."""
        if value is UNPARSED:  # check_structure is off
            value, problem = parse_json(body)
            if problem:
                self._schema_failed({"check": problem}, "does not parse")
                return
        if value is EMPTY:
            self._schema_failed({"check": "empty"}, "is empty")
            return
        detail = violation(self.schema, value)
        if detail is not None:
            self._schema_failed(detail, "does not match its schema in the OpenAPI document")

    def _schema_failed(self, detail: dict, what: str):
        status = self.held.status or ""
        detail = {"status": status[:3], "media_type": self._mime(), **detail}
        if self.layer.response_schemas.mode == "enforce":
            raise _Refused(RESPONSE_INVALID, f"the app's JSON response {what}; masked", detail,
                           event=RESPONSE_SCHEMA)
        events.emit(self.environ, RESPONSE_SCHEMA, f"the app's JSON response {what}; reported",
                    severity="warning", store=self.layer.store, logger=_log, detail=detail)


    def _report_json(self, body: bytes):
        """Events for request values that sat raw in hand-built JSON (now escaped)."""
        candidates = self.layer.candidates(self.environ, self.request_body)
        if not candidates:
            return
        text = body.decode("utf-8", "replace")
        findings = [Finding(c, "json") for c in candidates
                    if any(ch in c.value for ch in "<>&'") and c.value in text]
        if findings:
            self.layer.report(self.environ, findings, "application/json")


