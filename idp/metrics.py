"""Prometheus metrics at ``/metrics`` (prometheus-client), safe under several gunicorn workers.

What is counted:

- ``idp_http_requests_total{endpoint,method,status}`` and
  ``idp_http_request_duration_seconds{endpoint}``: every request, by Flask endpoint name (a
  bounded set; unknown paths are ``unmatched``), never by raw path;
- ``idp_logins_total{method,outcome}``, ``idp_mfa_challenges_total{factor}``,
  ``idp_mfa_successes_total{factor}``, ``idp_mfa_failures_total{factor,reason}`` and
  ``idp_step_ups_required_total{reason,acr}``: from the audit events (:func:`observe_audit`) and
  the factor service (:func:`mfa_challenge_started`);
- ``idp_tokens_issued_total{grant_type}``: successful token endpoint responses;
- ``idp_rate_limited_total{endpoint}``: requests answered 429;
- ``idp_dependency_unavailable_total{dependency}``: requests answered 503 because the database
  or the store could not be reached.

Multi-process mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``idp serve`` sets it, see
:mod:`idp.server`), every worker writes its values to files in that folder and ``/metrics``
aggregates them, so a scrape sees the whole pod whichever worker answers. The metric objects are
built lazily, once per process, so a worker forked from a master that imported this module
still writes its own files.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds; from a cached JWKS (milliseconds) to an argon2 password check under load.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"


def multiprocess_dir() -> str | None:
    """The folder shared by the workers, when running in multi-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


@dataclass(frozen=True)
class Metrics:
    """The metric objects of this process."""

    registry: CollectorRegistry | None
    requests: Counter
    latency: Histogram
    logins: Counter
    mfa_challenges: Counter
    mfa_successes: Counter
    mfa_failures: Counter
    step_ups: Counter
    tokens: Counter
    rate_limited: Counter
    unavailable: Counter

    @classmethod
    def build(cls, multiprocess: bool) -> Metrics:
        if multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus-client picks its value class when first imported; this process may
            # have imported it before ``idp serve`` set PROMETHEUS_MULTIPROC_DIR.
            values.ValueClass = values.get_value_class()
        # Multi-process: values live in files, read by MultiProcessCollector at scrape time.
        registry = None if multiprocess else CollectorRegistry()
        kw: dict[str, Any] = {"registry": registry}
        return cls(
            registry=registry,
            requests=Counter("idp_http_requests", "HTTP requests answered.",
                             ["endpoint", "method", "status"], **kw),
            latency=Histogram("idp_http_request_duration_seconds",
                              "Time to answer an HTTP request.", ["endpoint"],
                              buckets=LATENCY_BUCKETS, **kw),
            logins=Counter("idp_logins", "Primary sign-in attempts.", ["method", "outcome"],
                           **kw),
            mfa_challenges=Counter("idp_mfa_challenges", "Second-factor challenges started.",
                                   ["factor"], **kw),
            mfa_successes=Counter("idp_mfa_successes", "Second-factor proofs accepted.",
                                  ["factor"], **kw),
            mfa_failures=Counter("idp_mfa_failures", "Second-factor proofs rejected.",
                                 ["factor", "reason"], **kw),
            step_ups=Counter("idp_step_ups_required",
                             "Authorization requests that needed a stronger authentication.",
                             ["reason", "acr"], **kw),
            tokens=Counter("idp_tokens_issued", "Token endpoint responses with tokens.",
                           ["grant_type"], **kw),
            rate_limited=Counter("idp_rate_limited",
                                 "Requests refused by a rate limit (HTTP 429).", ["endpoint"],
                                 **kw),
            unavailable=Counter("idp_dependency_unavailable",
                                "Requests answered 503 because a dependency was unreachable.",
                                ["dependency"], **kw),
        )


_lock = threading.Lock()
_built: dict[int, Metrics] = {}


def metrics() -> Metrics:
    """This process's metrics, built on first use (after any fork)."""
    pid = os.getpid()
    current = _built.get(pid)
    if current is None:
        with _lock:
            current = _built.get(pid)
            if current is None:
                _built.clear()
                current = _built[pid] = Metrics.build(multiprocess_dir() is not None)
    return current


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (all workers' in multi-process mode)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = metrics().registry  # type: ignore[assignment]
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -- what the rest of the IdP reports ----------------------------------------------------------

def _label(value: Any, default: str = "none") -> str:
    """A bounded label value: short text only (labels never carry identifiers)."""
    text = str(value) if value not in (None, "") else default
    return text[:48]


def step_up_reason(trace_line: str) -> str:
    """The kind of cause behind one line of a step-up's policy trace (a bounded label set)."""
    if trace_line.startswith("requested "):
        return "requested"
    if trace_line.startswith("client minimum_acr"):
        return "client_minimum"
    if trace_line.startswith("rule "):
        return "policy_rule"
    if trace_line.startswith("enforcement is required: "):
        return "enforcement"
    return ""


def observe_audit(event_type: str, data: dict[str, Any]) -> None:
    """Count what an audit event tells (called by :func:`idp.audit.record`)."""
    m = metrics()
    if event_type == "user.login_succeeded":
        m.logins.labels(_label(data.get("method")), "success").inc()
    elif event_type == "user.login_failed":
        m.logins.labels(_label(data.get("method"), "password"), "failure").inc()
    elif event_type == "user.mfa_succeeded":
        m.mfa_successes.labels(_label(data.get("factor_type"))).inc()
    elif event_type == "user.mfa_failed":
        m.mfa_failures.labels(_label(data.get("factor_type")), _label(data.get("reason"))).inc()
    elif event_type == "user.step_up_required":
        reasons = {step_up_reason(str(line)) for line in data.get("trace") or []} - {""}
        for reason in sorted(reasons) or ["unspecified"]:
            m.step_ups.labels(reason, _label(data.get("required_acr"))).inc()


def mfa_challenge_started(factor: str) -> None:
    metrics().mfa_challenges.labels(_label(factor)).inc()


def dependency_unavailable(dependency: str) -> None:
    metrics().unavailable.labels(dependency).inc()


def observe_request(response: Response, seconds: float) -> None:
    """Request count, latency, tokens issued and rate-limit hits for one response."""
    m = metrics()
    endpoint = request.endpoint or UNMATCHED
    status = response.status_code
    m.requests.labels(endpoint, request.method if request.method in _METHODS else "other",
                      str(status)).inc()
    m.latency.labels(endpoint).observe(seconds)
    if status == 429:
        m.rate_limited.labels(endpoint).inc()
    if endpoint == "oidc.token" and status == 200:
        grant_type = request.form.get("grant_type", "") if request.mimetype == \
            "application/x-www-form-urlencoded" else ""
        m.tokens.labels(grant_type if grant_type in _GRANT_TYPES else "other").inc()


_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
_GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and count every response."""

    def metrics_view() -> Response:
        body, content_type = exposition()
        response = Response(body, content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])

    @app.after_request
    def count(response: Response) -> Response:
        from idp.request_log import elapsed

        observe_request(response, elapsed())
        return response
