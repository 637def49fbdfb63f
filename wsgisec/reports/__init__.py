"""Security reporting: one collector for browser reports, partner reports and security.txt.

Practice 7. Partners and customers who notice a suspicious error message or activity need
somewhere to say so, and browsers can tell us when a page broke its Content Security
Policy. This layer answers three paths itself and passes everything else to the app:

* ``POST /_wsgisec/reports/browser``: CSP ``report-uri`` bodies (``application/csp-report``)
  and Reporting API batches (``application/reports+json``: csp-violation, coep, coop,
  deprecation, intervention, crash, network-error). Reports caused by browser extensions
  (``moz-extension:``, ``chrome-extension:`` …) and unknown types are dropped and counted.
  CORS preflights are answered for ``browser_origins``. Answers 204.
* ``POST /_wsgisec/reports``: a partner's report (JSON schema in README, "Security
  reports": ``kind``, ``description``, ``observed_at``, ``incident_id``, ``evidence``).
  The request runs through the authentication layers *inside* this one
  (``authenticate_with``: token_auth's bearer token, signed_requests' signature), so the
  partner is known by ``environ["wsgisec.client"]``; without credentials it is refused
  (401) unless ``anonymous_reports`` is on. Answers 201 with the report id.
* ``GET /.well-known/security.txt`` (RFC 9116) when ``security_contact`` is set, with a
  rolling ``Expires``.

Every response of the app gets ``Reporting-Endpoints`` (W3C Reporting API §3.2) naming the
browser intake as ``default`` and ``wsgisec-csp`` (the escaping layer's ``report-to``).

Everything sent to the intake is hostile input (OWASP Logging Cheat Sheet): a size cap
(413), media types (415), a JSON depth limit, a field allowlist with truncation (400 for a
partner report outside the schema), rate limits per client, per address and in total
(429 with ``Retry-After``, RFC 6585 §4), and identical reports within
``duplicate_window`` counted, not stored again. A report is acknowledged (2xx) only after
the store committed it; if the store cannot be reached the answer is 503 so that the
sender retries: nothing acknowledged is ever lost. Each report is an event of the shared
schema (:mod:`wsgisec.events`, kind ``reports.<type>``), so ``wsgisec reports show`` joins
a partner's report to the masked error whose incident id it quotes.

ini::

    [filter:reports]
    use = egg:wsgisec#reports
    get store = wsgisec_store
    security_contact = mailto:security@example.com
    security_policy = https://example.com/security-policy

Settings (ini name, default):

``browser_path`` (/_wsgisec/reports/browser)
    Where browsers send CSP and Reporting API reports.
``partner_path`` (/_wsgisec/reports)
    Where partners POST their reports.
``max_report_size`` (64KB)
    Larger bodies are refused with 413 before they are read.
``max_json_depth`` (8)
    Deeper JSON is refused with 400.
``max_batch`` (100)
    Reports kept from one Reporting API batch; the rest are dropped and counted.
``max_field_length`` (1024)
    Longer strings in a report are cut.
``max_description_length`` (4000)
    Longer partner descriptions are cut (and the report marked ``truncated``).
``rate_limit_client`` (60/1m)
    Partner reports per authenticated client.
``rate_limit_address`` (30/1m)
    Reports (browser or partner) per remote address.
``rate_limit_anonymous`` (5/1m)
    Anonymous partner reports per remote address (only with ``anonymous_reports``).
``rate_limit_global`` (600/1m)
    Reports of every kind together, to bound the store's growth.
``duplicate_window`` (1h)
    Identical reports within this window are counted, not stored again.
``anonymous_reports`` (false)
    Accept partner reports without credentials (rate-limited by ``rate_limit_anonymous``).
``authenticate_with`` (token_auth signed_requests)
    Layers inside this one that authenticate partner reports, in pipeline order.
``browser_origins`` (none)
    Origins (``https://app.example.com``) whose pages may send reports cross-origin (CORS).
``reporting_endpoints`` (true)
    Send the ``Reporting-Endpoints`` header on the app's responses.
``security_contact`` (none)
    ``Contact:`` URIs of security.txt (``mailto:``, ``https:``); none: no security.txt
    (``wsgisec check`` warns).
``security_expires`` (30d)
    ``Expires:`` is this far ahead of each response (RFC 9116 §2.5.5: under a year).
``security_encryption``, ``security_policy``, ``security_canonical``, ``security_acknowledgments``, ``security_hiring`` (none)
    URIs for the security.txt fields of those names.
``security_languages`` (none)
    ``Preferred-Languages:`` tags, e.g. ``en de``.
``alerts`` (none)
    Alert rules, one per line: ``PATTERN COUNT/WINDOW [per address|per client]``, e.g.
    ``token_auth.* 20/5m per address`` (see :mod:`wsgisec.reports.alerts`). Alerts go to
    the ``wsgisec.alerts`` logger.
``alert_webhook`` (none)
    Also POST each alert (JSON) to this ``https://`` URL.
``alert_webhook_timeout`` (5s), ``alert_webhook_retries`` (3)
    Per attempt; attempts after the first wait 0.5 s, 1 s, 2 s …
``alert_webhook_secret`` (none)
    ``env:NAME``: sign each webhook body (``X-Wsgisec-Signature: sha256=...``).
``dashboard`` (false)
    Serve the operators' dashboard (HTML) and its JSON twin (``.json``); see
    :mod:`wsgisec.reports.dashboard`.
``dashboard_path`` (/_wsgisec/dashboard)
    Where.
``dashboard_scope`` (wsgisec:admin)
    A token with this scope (checked by token_auth inside) may see it.
``dashboard_token`` (none)
    ``env:NAME``: a bearer token that may see it too (compared in constant time).
``dashboard_window`` (24h)
    How far back the dashboard looks.
``retention`` (90d)
    Events and reports older than this are purged (about once an hour, by whichever
    worker takes a report; ``wsgisec reports purge`` does it now).
``store`` (``wsgisec.sqlite`` beside the ini file)
    Where reports, counters and duplicates are kept.
"""

from __future__ import annotations

import copy

from .. import pipeline, settings
from ..layer import Layer, layer_factory
from ..responses import fixed, problem, store_unavailable
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from . import securitytxt
from .dashboard import DashboardAccess
from .alerts import AlertWatcher, Webhook, install as install_alerts, rules as alert_rules
from .endpoints import PARTNER_REPORT, RATE_LIMITED, REPORT_INVALID, REPORT_TOO_LARGE, Intake
from .timeline import limit

__all__ = ["Reports", "filter_factory", "SETTINGS"]

__all__ += ["PARTNER_REPORT", "RATE_LIMITED", "REPORT_INVALID", "REPORT_TOO_LARGE"]


def _path(text: str) -> str:
    value = text.strip()
    if not value.startswith("/") or any(ch.isspace() for ch in value):
        raise ValueError("a URL path starting with /")
    return value


def _origins(text: str) -> tuple[str, ...]:
    values = settings.words(text)
    for value in values:
        if not value.startswith(("https://", "http://")) or value.count("/") != 2:
            raise ValueError(f"origins such as https://app.example.com ({value!r} is not one)")
    return values


def _webhook_url(text: str) -> str:
    value = text.strip()
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("an https:// URL")
    return value


def _uris(text: str) -> tuple[str, ...]:
    return securitytxt.uri_list(settings.words(text))


SETTINGS = {
    "browser_path": (_path, "/_wsgisec/reports/browser"),
    "partner_path": (_path, "/_wsgisec/reports"),
    "max_report_size": (settings.size, "64KB"),
    "max_json_depth": (settings.integer(1, 64), "8"),
    "max_batch": (settings.integer(1, 1000), "100"),
    "max_field_length": (settings.integer(16, 65536), "1024"),
    "max_description_length": (settings.integer(16, 65536), "4000"),
    "rate_limit_client": (limit, "60/1m"),
    "rate_limit_address": (limit, "30/1m"),
    "rate_limit_anonymous": (limit, "5/1m"),
    "rate_limit_global": (limit, "600/1m"),
    "duplicate_window": (settings.duration, "1h"),
    "anonymous_reports": (settings.boolean, "false"),
    "authenticate_with": (settings.words, "token_auth signed_requests"),
    "browser_origins": (_origins, ""),
    "reporting_endpoints": (settings.boolean, "true"),
    "security_contact": (_uris, ""),
    "security_expires": (settings.duration, "30d"),
    "security_encryption": (_uris, ""),
    "security_policy": (_uris, ""),
    "security_canonical": (_uris, ""),
    "security_acknowledgments": (_uris, ""),
    "security_hiring": (_uris, ""),
    "security_languages": (settings.words, ""),
    "alerts": (alert_rules, ""),
    "alert_webhook": (_webhook_url, ""),
    "alert_webhook_timeout": (settings.duration, "5s"),
    "alert_webhook_retries": (settings.integer(0, 10), "3"),
    "alert_webhook_secret": (settings.optional(settings.secret), ""),
    "dashboard": (settings.boolean, "false"),
    "dashboard_path": (_path, "/_wsgisec/dashboard"),
    "dashboard_scope": (settings.words, "wsgisec:admin"),
    "dashboard_token": (settings.optional(settings.secret), ""),
    "dashboard_window": (settings.duration, "24h"),
    "retention": (settings.duration, "90d"),
    "store": (settings.optional(settings.store_url), None),
}

class Reports(Intake, DashboardAccess, Layer):
    """The security report collector (see the module docstring for every setting)."""

    wsgisec_layer = "reports"

    def __init__(self, app, *, browser_path="/_wsgisec/reports/browser",
                 partner_path="/_wsgisec/reports", max_report_size=64 * 1024, max_json_depth=8,
                 max_batch=100, max_field_length=1024, max_description_length=4000,
                 rate_limit_client="60/1m", rate_limit_address="30/1m",
                 rate_limit_anonymous="5/1m", rate_limit_global="600/1m",
                 duplicate_window=3600, anonymous_reports=False,
                 authenticate_with=("token_auth", "signed_requests"), browser_origins=(),
                 reporting_endpoints=True, security_contact=(), security_expires=30 * 86400,
                 security_encryption=(), security_policy=(), security_canonical=(),
                 security_acknowledgments=(), security_hiring=(), security_languages=(),
                 alerts=(), alert_webhook="", alert_webhook_timeout=5, alert_webhook_retries=3,
                 alert_webhook_secret=None, dashboard=False, dashboard_path="/_wsgisec/dashboard",
                 dashboard_scope="wsgisec:admin", dashboard_token=None, dashboard_window=86400,
                 retention=90 * 86400, store=None):
        if browser_path == partner_path:
            raise ConfigurationError("browser_path and partner_path must differ")
        self.app = app
        self.browser_path, self.partner_path = browser_path, partner_path
        self.max_report_size, self.max_json_depth = max_report_size, max_json_depth
        self.max_batch, self.max_field = max_batch, max_field_length
        self.max_description = max_description_length
        self.limits = {name: limit(value) if isinstance(value, str) else value for name, value in (
            ("client", rate_limit_client), ("address", rate_limit_address),
            ("anonymous", rate_limit_anonymous), ("global", rate_limit_global))}
        self.duplicate_window = duplicate_window
        self.anonymous_reports = anonymous_reports
        if retention < 86400:
            raise ConfigurationError("retention must be at least 1d: an investigation needs the history")
        self.retention = retention
        self.alert_webhook = alert_webhook
        if alert_webhook and not alerts:
            raise ConfigurationError("alert_webhook needs alerts (rules) to send")
        self.authenticate_with = tuple(authenticate_with)
        if not isinstance(dashboard_scope, str):  # the ini parser gives words
            if len(dashboard_scope) != 1:
                raise ConfigurationError("dashboard_scope is one scope")
            dashboard_scope = dashboard_scope[0]
        if dashboard_window < 3600:
            raise ConfigurationError("dashboard_window must be at least 1h")
        self.dashboard, self.dashboard_path = dashboard, dashboard_path
        self.dashboard_scope, self.dashboard_token = dashboard_scope, dashboard_token
        self.dashboard_window = dashboard_window
        if dashboard_path in (browser_path, partner_path):
            raise ConfigurationError("dashboard_path must differ from the intake paths")
        self.browser_origins = frozenset(browser_origins)
        self.store = coerce_store(store)
        if isinstance(alerts, str):
            alerts = alert_rules(alerts)
        self.watcher = None
        if alerts and self.store is not None:
            webhook = Webhook(alert_webhook, timeout=alert_webhook_timeout, retries=alert_webhook_retries,
                              secret=alert_webhook_secret) if alert_webhook else None
            self.watcher = AlertWatcher(self.store, alerts, webhook)
        if not 86400 <= security_expires <= 365 * 86400:
            raise ConfigurationError("security_expires must be between 1d and 365d "
                                     "(RFC 9116 §2.5.5: less than a year ahead)")
        self.security_txt = None
        if security_contact:
            fields = dict(contact=tuple(security_contact), expires_in=security_expires,
                          encryption=tuple(security_encryption), policy=tuple(security_policy),
                          canonical=tuple(security_canonical), hiring=tuple(security_hiring),
                          acknowledgments=tuple(security_acknowledgments),
                          languages=tuple(security_languages))
            securitytxt.render(**fields)  # fail at start-up, not at the first request
            self.security_txt = fields
        self.endpoints = (f'default="{browser_path}", wsgisec-csp="{browser_path}"'
                          if reporting_endpoints else None)
        self._auth = self._auth_chain(app, self.authenticate_with, self._accept_partner)
        self._dashboard_auth = self._auth_chain(app, ("token_auth",), self._dashboard_scoped) \
            if dashboard else None
        self.settings = {
            "browser_path": browser_path, "partner_path": partner_path,
            "max_report_size": max_report_size, "max_json_depth": max_json_depth,
            "max_batch": max_batch, "max_field_length": max_field_length,
            "max_description_length": max_description_length,
            **{f"rate_limit_{name}": str(rule) for name, rule in self.limits.items()},
            "duplicate_window": duplicate_window, "anonymous_reports": anonymous_reports,
            "authenticate_with": list(self.authenticate_with),
            "browser_origins": sorted(self.browser_origins),
            "reporting_endpoints": reporting_endpoints,
            "security_contact": list(security_contact), "security_expires": security_expires,
            "security_encryption": list(security_encryption), "security_policy": list(security_policy),
            "security_canonical": list(security_canonical),
            "security_acknowledgments": list(security_acknowledgments),
            "security_hiring": list(security_hiring), "security_languages": list(security_languages),
            "alerts": [str(rule) for rule in alerts], "alert_webhook": alert_webhook,
            "alert_webhook_timeout": alert_webhook_timeout, "alert_webhook_retries": alert_webhook_retries,
            "alert_webhook_secret": alert_webhook_secret,
            "dashboard": dashboard, "dashboard_path": dashboard_path,
            "dashboard_scope": dashboard_scope, "dashboard_token": dashboard_token,
            "dashboard_window": dashboard_window,
            "retention": retention, "store": getattr(self.store, "url", None),
        }
        if self.watcher is not None and app is not None:
            install_alerts(self.watcher)  # built for real, not only validated: watch events

    def _auth_chain(self, app, names, endpoint):
        """The layers ``names`` inside us, as copies that end at ``endpoint``, or None.

        Shallow copies share each layer's store and settings; only ``app`` differs, so a
        partner report (or a dashboard request) is authenticated exactly as an API call
        is, and never reaches the allowlist or the legacy app, which do not know the path.
        """
        if app is None:
            return None
        found = {getattr(type(layer), "wsgisec_layer", None): layer
                 for layer in pipeline.layers(app)[:-1]}
        chain = [found[name] for name in names if name in found]
        inner = endpoint
        for layer in reversed(chain):
            clone = copy.copy(layer)
            clone.app = inner
            inner = clone
        return inner if chain else None

    def warnings(self):
        found = []
        if self.security_txt is None:
            found.append("security_contact is not set: no /.well-known/security.txt is served, "
                         "so researchers have no published way to reach you (RFC 9116 requires Contact)")
        host = self.alert_webhook.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if self.alert_webhook.startswith("http://") and host not in ("127.0.0.1", "localhost", "[::1]"):
            found.append("alert_webhook is plain http: alerts cross the network in clear text")
        if self.anonymous_reports:
            found.append("anonymous_reports is on: anyone may file partner reports "
                         f"(limited to {self.limits['anonymous']} per address)")
        if self.store is None:
            found.append("no store: every report is refused with 503")
        if self.dashboard and self.dashboard_token is None and self.app is not None \
                and self._dashboard_auth is None:
            found.append("dashboard is on but nobody can open it: no token_auth layer inside "
                         "and no dashboard_token")
        if self.app is not None and self._auth is None and not self.anonymous_reports:
            found.append("no authentication layer (" + ", ".join(self.authenticate_with)
                         + ") inside this one: partner reports are refused unless another "
                           "layer sets wsgisec.client")
        return found

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.browser_path:
            handler = self._browser
        elif path == self.partner_path:
            handler = self._partner
        elif self.dashboard and path in (self.dashboard_path, self.dashboard_path + ".json"):
            handler = self._dashboard
        elif path == securitytxt.PATH and self.security_txt is not None:
            return self._security_txt(environ, start_response)
        else:
            if self.endpoints is None:
                return self.app(environ, start_response)
            return self.app(environ, self._with_endpoints(start_response))
        try:
            return handler(environ, start_response)
        except StoreUnavailable as error:
            return store_unavailable(environ, "reports", error, event=False,
                                     detail="Reports cannot be accepted right now; please retry.")(
                environ, start_response)

    def _with_endpoints(self, start_response):
        endpoints = self.endpoints

        def reporting_start_response(status, headers, exc_info=None):
            headers = list(headers)
            for index, (name, value) in enumerate(headers):
                if name.lower() == "reporting-endpoints":
                    # A structured dictionary (RFC 8941): add only the names it lacks.
                    missing = [item.strip() for item in endpoints.split(",")
                               if item.split("=", 1)[0].strip() + "=" not in value.replace(" ", "")]
                    if missing:
                        headers[index] = (name, value + ", " + ", ".join(missing))
                    break
            else:
                headers.append(("Reporting-Endpoints", endpoints))
            return start_response(status, headers, exc_info)

        return reporting_start_response

    def _security_txt(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return problem(environ, 405, "Use GET.", headers=[("Allow", "GET, HEAD")])(
                environ, start_response)
        body = securitytxt.render(**self.security_txt)
        return fixed(200, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Cache-Control", "max-age=3600")], body)(environ, start_response)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#reports``."""
    kw = settings.parse("reports", SETTINGS, local_conf, global_conf)
    return layer_factory("reports", Reports, kw, global_conf)
