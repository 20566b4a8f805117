"""Templates to HTML responses: every value escaped (autoescape; nothing is marked safe), and
headers that keep the page to itself — no asset from anywhere, no script, no frame around it."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from services.gateway.page import views

# The stylesheet is inline (style-src 'unsafe-inline'); nothing else may load, not even a script
# of our own, and forms may post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",  # no one frames the approve button under something else
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # findings and tokens stay out of shared caches and the back button
}

_templates = Environment(
    loader=PackageLoader("services.gateway.page", "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a missing value is a bug, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals.update(
    time_left=views.time_left,
    is_urgent=views.is_urgent,
    by_file=views.by_file,
    tally=views.tally,
    severity_of=views.severity_of,
    when=views.when,
    iso=views.iso,
    plain=views.plain,
    STATES=views.STATES,
)


def render(template: str, status: int = 200, *, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """`template` filled with `context`, as an HTML response with the page's security headers."""
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status, headers={**SECURITY_HEADERS, **(headers or {})})
