"""Prometheus metrics at /metrics (DESIGN §8).

In-process: what each flow counts (requests by endpoint and status, latency, logins, MFA
challenges/successes/failures by factor, step-ups by reason, tokens by grant type, rate-limit
hits), read back from the exposition text; values are compared before and after, since the
registry lives as long as the test process.

Under gunicorn (``idp serve`` with two workers): the numbers are the sum over the workers,
survive a worker's death, start from zero after a restart, and the temporary metrics folder is
removed at a graceful stop.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pyotp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from idp.metrics import step_up_reason
from idp.server import prepare_metrics_dir
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import form_action, hidden_inputs, page_name
from tests.production.services import IdpServer, RedisServer, idp_env, run_idp, wait_for

WRONG_PASSWORD = "not the right password"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in exposition ``text`` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return 0.0


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` matching ``labels``."""
    found = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                found += float(item.value)
    return found


def scrape(base_url: str) -> str:
    response = requests.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


# -- in-process --------------------------------------------------------------------------------

@pytest.fixture
def app_overrides():
    return {"login": {"max_failures_per_account": 2, "base_delay": 30, "max_delay": 60}}


def test_requests_are_counted_by_endpoint_and_status_with_latency(flows):
    base = flows.base_url
    before = scrape(base)
    for _ in range(3):
        assert requests.get(base + "/jwks", timeout=10).status_code == 200
    assert requests.get(base + "/no/such/page?x=1", timeout=10).status_code == 404
    after = scrape(base)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("idp_http_requests_total", endpoint="oidc.jwks", method="GET",
                 status="200") == 3
    assert delta("idp_http_request_duration_seconds_count", endpoint="oidc.jwks") == 3
    assert delta("idp_http_request_duration_seconds_bucket", endpoint="oidc.jwks",
                 le="+Inf") == 3
    # Unknown paths share one label: the raw path never becomes a label.
    assert delta("idp_http_requests_total", endpoint="unmatched", method="GET",
                 status="404") == 1
    assert "/no/such/page" not in after


def test_logins_mfa_step_ups_and_tokens_are_counted(flows, app):
    base = flows.base_url
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    before = scrape(base)

    browser = flows.browser()
    failed = flows.browser()
    url, _ = rp.authorize_url()
    page = failed.follow(failed.get(url))
    assert failed.submit_login(page, "alice", WRONG_PASSWORD).status_code == 401
    first = flows.sign_in(browser, rp)  # password, tokens by authorization_code
    url, flow_secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    if page_name(page.text) == "mfa-picker":
        raise AssertionError("only TOTP is enrolled: the challenge comes directly")
    assert page_name(page.text) == "mfa-totp"
    wrong = browser.post(form_action(page.text, "/mfa/verify"),
                         {**hidden_inputs(page.text), "code": "000000"})
    assert wrong.status_code == 400
    right = browser.follow(browser.post(form_action(wrong.text, "/mfa/verify"), {
        **hidden_inputs(wrong.text), "code": pyotp.TOTP(secret).now()}))
    assert right.headers["Location"].startswith(rp.redirect_uri)
    refreshed = requests.post(base + "/token", auth=(rp.client_id, rp.client_secret), data={
        "grant_type": "refresh_token", "refresh_token": first.token["refresh_token"]},
        timeout=10)
    assert refreshed.status_code == 200
    assert flow_secrets
    after = scrape(base)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("idp_logins_total", method="password", outcome="success") == 1
    assert delta("idp_logins_total", method="password", outcome="failure") == 1
    assert delta("idp_mfa_challenges_total", factor="totp") == 1
    assert delta("idp_mfa_failures_total", factor="totp", reason="invalid_code") == 1
    assert delta("idp_mfa_successes_total", factor="totp") == 1
    assert delta("idp_step_ups_required_total", reason="requested", acr="aal2") == 1
    assert delta("idp_tokens_issued_total", grant_type="authorization_code") == 1
    assert delta("idp_tokens_issued_total", grant_type="refresh_token") == 1
    # Labels carry kinds, never identifiers.
    assert "alice" not in after and rp.client_id not in after


def test_rate_limit_hits_are_counted(flows):
    base = flows.base_url
    flows.user("alice")
    rp = flows.client("rp1")
    before = scrape(base)
    statuses = []
    for _ in range(3):
        browser = flows.browser()
        url, _ = rp.authorize_url()
        page = browser.follow(browser.get(url))
        statuses.append(browser.submit_login(page, "alice", WRONG_PASSWORD).status_code)
    after = scrape(base)
    assert statuses == [401, 401, 429]
    assert sample(after, "idp_rate_limited_total", endpoint="interaction.login") - \
        sample(before, "idp_rate_limited_total", endpoint="interaction.login") == 1


@pytest.mark.parametrize(("line", "reason"), [
    ("requested aal2", "requested"),
    ("client minimum_acr is aal2", "client_minimum"),
    ("rule 1 (new_device=True) requires aal2", "policy_rule"),
    ("enforcement is required: aal2", "enforcement"),
    ("enforcement is optional: no second factor required", ""),
])
def test_step_up_reasons_are_a_bounded_set(line, reason):
    assert step_up_reason(line) == reason


def test_metrics_folder_of_an_operator_is_emptied_at_start(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_12345.db").write_bytes(b"stale")
    (folder / "keep.txt").write_text("not ours")
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    path, created = prepare_metrics_dir(environ)
    assert (path, created) == (str(folder), False)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def test_without_a_metrics_folder_a_temporary_one_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    environ: dict[str, str] = {}
    path, created = prepare_metrics_dir(environ)
    assert created and Path(path).is_dir() and Path(path).parent == tmp_path
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == path


# -- under gunicorn ----------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path, redis_server: RedisServer):
    """An initialised SQLite instance served by two workers sharing this suite's Redis."""
    home = tmp_path / "home"
    home.mkdir()
    env = idp_env(home, "sqlite:///idp.sqlite3", redis_server.url, "http://127.0.0.1:1",
                  IDP_STORE_NAMESPACE="metrics-test", TMPDIR=str(tmp_path))
    run_idp(env, "init")
    servers: list[IdpServer] = []

    def serve(**kw: object) -> IdpServer:
        server = IdpServer(env, workers=2, **kw)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield serve
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_workers_are_summed_and_a_killed_worker_keeps_its_counts(served, tmp_path):
    server = served()
    before = sample(scrape(server.url), "idp_http_requests_total", endpoint="health.healthz",
                    method="GET", status="200")
    for _ in range(40):  # a new connection each: the kernel spreads them over the workers
        assert requests.get(server.url + "/healthz", timeout=10,
                            headers={"Connection": "close"}).status_code == 200
    pids = server.worker_pids()
    assert len(pids) == 2
    files = {p.name for p in Path(server.metrics_dir).iterdir()}
    served_by = {pid for pid in pids if f"counter_{pid}.db" in files}
    assert served_by, files
    counted = sample(scrape(server.url), "idp_http_requests_total",
                     endpoint="health.healthz", method="GET", status="200")
    assert counted - before == 40

    # A worker dies: what it counted stays counted (its file remains; the master marks it dead).
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: len(server.worker_pids()) == 2 and pids[0] not in server.worker_pids(),
             20, "a replacement worker")
    after_kill = sample(scrape(server.url), "idp_http_requests_total",
                        endpoint="health.healthz", method="GET", status="200")
    assert after_kill >= counted


@pytest.mark.slow
def test_a_restart_starts_from_zero_and_a_graceful_stop_removes_its_folder(served, tmp_path):
    first = served()
    for _ in range(5):
        requests.get(first.url + "/jwks", timeout=10)
    assert sample(scrape(first.url), "idp_http_requests_total", endpoint="oidc.jwks",
                  method="GET", status="200") == 5
    first.stop()
    # Same operator folder (as a restarted container keeps its volume): stale files go.
    again = served(port=first.port, metrics_dir=first.metrics_dir)
    assert sample(scrape(again.url), "idp_http_requests_total", endpoint="oidc.jwks",
                  method="GET", status="200") == 0

    # Without PROMETHEUS_MULTIPROC_DIR the server makes a temporary folder under TMPDIR ...
    own = served(own_metrics_dir=False)
    made = [p for p in tmp_path.iterdir() if p.name.startswith("idp-metrics-")]
    assert len(made) == 1 and any(made[0].iterdir())
    # ... and removes it when stopped gracefully (SIGTERM to the master, as Kubernetes does).
    assert own.stop(graceful=True) == 0
    assert not made[0].exists()
