"""The TOTP enrollment QR code: one rendering, shown inline and handed to JSON clients."""

from __future__ import annotations

import base64

from idp import qr

URI = "otpauth://totp/Stepup:alice?secret=JBSWY3DPEHPK3PXP&issuer=Stepup"


def test_svg_is_an_inline_svg_document() -> None:
    image = qr.svg(URI)
    assert image.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in image
    assert image.rstrip().endswith("</svg>")


def test_data_uri_carries_the_same_image() -> None:
    image = qr.svg(URI)
    prefix = "data:image/svg+xml;base64,"
    uri = qr.data_uri(image)
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix):]).decode() == image
