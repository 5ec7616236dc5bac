"""The hosted pages' contract (DESIGN §7), checked on rendered HTML.

Every visible input has a ``<label for>`` and the standard ``autocomplete``; every form is POST
with a hidden CSRF field; ``<main data-page>`` names the page.
"""

from __future__ import annotations

from html.parser import HTMLParser

#: autocomplete values the pages may use (WHATWG HTML §4.10.18.7.1).
ALLOWED_AUTOCOMPLETE = {"username", "current-password", "new-password", "one-time-code",
                        "webauthn", "username webauthn", "tel", "email", "off"}
HIDDEN_OR_BUTTON = {"hidden", "submit", "button", "checkbox"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.main: list[dict[str, str | None]] = []
        self.forms: list[dict] = []
        self.labels_for: set[str] = set()
        self.inputs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if tag == "main":
            self.main.append(data)
        elif tag == "form":
            self.forms.append({"attrs": data, "inputs": []})
        elif tag == "label" and data.get("for"):
            self.labels_for.add(str(data["for"]))
        elif tag == "input":
            self.inputs.append(data)
            if self.forms:
                self.forms[-1]["inputs"].append(data)


def contract_violations(html: str) -> list[str]:
    """What on the page breaks the contract (empty when it holds)."""
    page = _Collector()
    page.feed(html)
    problems = []
    if len(page.main) != 1 or not page.main[0].get("data-page"):
        problems.append("no single <main data-page>")
    for form in page.forms:
        attrs = form["attrs"]
        if (attrs.get("method") or "").lower() != "post":
            problems.append(f"form to {attrs.get('action')} is not POST")
        names = {i.get("name") for i in form["inputs"] if i.get("type") == "hidden"}
        if "csrf_token" not in names and "token" not in names:
            problems.append(f"form to {attrs.get('action')} has no CSRF field")
        if "token" in names and "csrf_token" not in names:
            problems.append(f"form to {attrs.get('action')} has no csrf_token")
    for field in page.inputs:
        kind = (field.get("type") or "text").lower()
        if kind in HIDDEN_OR_BUTTON:
            if kind == "checkbox" and field.get("id") not in page.labels_for:
                problems.append(f"checkbox {field.get('name')} has no <label for>")
            continue
        if field.get("id") not in page.labels_for:
            problems.append(f"input {field.get('name')} has no <label for>")
        if (field.get("autocomplete") or "") not in ALLOWED_AUTOCOMPLETE:
            problems.append(f"input {field.get('name')} autocomplete={field.get('autocomplete')!r}")
    return problems
