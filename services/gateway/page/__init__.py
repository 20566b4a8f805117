"""The approval page: a small server-rendered site on the gateway where a person decides on the
releases that wait for one (`/approvals`).

    GET  /approvals                    pending approvals (`?state=` for the others), with findings
    GET  /approvals/{id}               one approval, its history, and approve/reject with a note
    POST /approvals/{id}/decision      the decision (scope `approvals:decide`)
    GET  /approvals/sign-in            paste an API key or a JWT; POST checks it at the door
    POST /approvals/sign-out           forget it

A browser cannot send `Authorization: Bearer`, so the credential the person pastes is kept in an
HttpOnly, SameSite=Strict cookie scoped to `/approvals` and every request takes it through the
same door as the API (session.py). No asset comes from the network: the CSS is inline, there is no
script, and the Content-Security-Policy forbids loading anything (render.py).

Where to look: the routes (routes.py), cookies and CSRF (session.py), what a view shows (views.py),
the templates (templates/).
"""

from services.gateway.page.routes import approval_page

__all__ = ["approval_page"]
