"""``benchmarks/http_floor.py`` starts a real WSGI server around its do-nothing app, drives it
and reads the server's CPU; a server whose executable is missing is reported as skipped, not
measured. No timing is asserted."""

from __future__ import annotations

import pytest

from benchmarks import http_floor


def test_the_idp_serve_worker_answers_and_its_cpu_is_read():
    record = http_floor.measure("gunicorn-bounded", concurrency=2, duration=0.5, warmup=0.3)
    assert record["server"] == "gunicorn-bounded"
    assert record["requests_per_s"] > 0
    assert record["server_cpu_ms_per_request"] > 0
    report = http_floor.markdown([record], {"git": "test", "loadavg_start": [0, 0, 0]})
    assert "| gunicorn-bounded | 2 |" in report


def test_a_server_that_is_not_installed_is_skipped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(http_floor.SERVERS, "absent",
                        ("no-such-server-executable", lambda port: ["false"]))
    record = http_floor.measure("absent", concurrency=1, duration=0.1, warmup=0.1)
    assert record == {"server": "absent",
                      "skipped": f"no-such-server-executable is not installed in "
                                 f"{http_floor.VENV_BIN}"}
    assert "skipped: no-such-server-executable" in http_floor.markdown(
        [record], {"git": "test", "loadavg_start": [0, 0, 0]})


def test_unknown_server_names_are_refused(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        http_floor.main(["--servers", "gunicorn-sync,nginx", "--rounds", "1"])
    assert "unknown servers: nginx" in capsys.readouterr().err
