"""Workers fix glibc's mmap threshold so argon2id's 19 MiB blocks go back to the system
(idp/server.py ``limit_malloc_retention``; RSS figures in benchmarks/README.md)."""

from __future__ import annotations

import platform
import sys

import pytest

from idp.server import limit_malloc_retention

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt(M_MMAP_THRESHOLD) is glibc's")
def test_sets_the_threshold_on_glibc() -> None:
    assert limit_malloc_retention(environ={}) is True


def test_an_operators_malloc_setting_wins() -> None:
    assert limit_malloc_retention(environ={"MALLOC_MMAP_THRESHOLD_": "262144"}) is False
