"""QR codes as inline SVG (segno), for TOTP enrollment."""

from __future__ import annotations

import base64
import io

import segno


def svg(data: str) -> str:
    """An SVG document (no XML declaration) encoding ``data``; safe to inline in HTML."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="svg", scale=4, border=2, xmldecl=False,
                                     svgns=True, title="QR code", nl=False)
    return buffer.getvalue().decode("ascii")


def data_uri(svg_document: str) -> str:
    """``svg_document`` (from :func:`svg`) as a ``data:`` URI, for JSON clients: the same
    image, not a second rendering (rendering is most of a TOTP enrollment's cost)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg_document.encode()).decode("ascii")
