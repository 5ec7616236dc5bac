"""The cap on bodies without Content-Length (idp/wsgi_limits.py), in-process."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from idp.wsgi_limits import BodyLimit, CappedInput

LIMIT = 1000


@pytest.mark.parametrize("size", [0, 10, LIMIT])
def test_bodies_up_to_the_limit_pass_whole(size):
    capped = CappedInput(io.BytesIO(b"a" * size), LIMIT)
    assert capped.read() == b"a" * size
    # Behind Werkzeug's own cap too (which would cut a longer body silently).
    behind = LimitedStream(CappedInput(io.BytesIO(b"a" * size), LIMIT), LIMIT, is_max=True)
    assert behind.read() == b"a" * size


@pytest.mark.parametrize("read", ["all", "sized", "lines", "werkzeug"])
def test_one_byte_over_the_limit_is_refused(read):
    capped = CappedInput(io.BytesIO(b"a\n" * (LIMIT // 2) + b"b"), LIMIT)
    with pytest.raises(RequestEntityTooLarge):
        if read == "all":
            capped.read()
        elif read == "sized":
            while capped.read(64):
                pass
        elif read == "lines":
            list(capped)
        else:
            LimitedStream(capped, LIMIT, is_max=True).read()


def test_only_bodies_without_content_length_on_terminated_input_are_wrapped():
    seen = {}

    def app(environ, start_response):
        seen["input"] = environ["wsgi.input"]
        return [b""]

    limited = BodyLimit(app, LIMIT)
    raw = io.BytesIO(b"")
    limited({"wsgi.input": raw, "wsgi.input_terminated": True}, None)
    assert isinstance(seen["input"], CappedInput)
    limited({"wsgi.input": raw, "wsgi.input_terminated": True, "CONTENT_LENGTH": "5"}, None)
    assert seen["input"] is raw
    limited({"wsgi.input": raw}, None)
    assert seen["input"] is raw
