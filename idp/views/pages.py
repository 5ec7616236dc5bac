"""Small shared pages: the home page, branding stylesheet, health."""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from idp.extensions import settings

bp = Blueprint("pages", __name__)


@bp.get("/")
def home() -> str:
    return render_template("home.html")


@bp.get("/branding.css")
def branding_css() -> Response:
    # The colour is validated as #rgb/#rrggbb at start (idp/config.py), so it is safe in CSS.
    css = f":root {{ --brand: {settings().branding.primary_color}; }}\n"
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
