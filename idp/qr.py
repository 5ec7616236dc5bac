"""QR codes as inline SVG (segno), for TOTP enrollment."""

from __future__ import annotations

import io

import segno


def svg(data: str) -> str:
    """An SVG document (no XML declaration) encoding ``data``; safe to inline in HTML."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="svg", scale=4, border=2, xmldecl=False,
                                     svgns=True, title="QR code", nl=False)
    return buffer.getvalue().decode("ascii")


def svg_data_uri(data: str) -> str:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="svg", scale=4, border=2)
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
