"""The gateway: the mesh's front door over HTTP.

`POST /v1/events/{event_type}` publishes a contract event for an authenticated caller (202 and
a status URL; `?wait=` holds the request for the outcome), `GET /v1/releases/{id}/revisions/{digest}`
answers where a revision stands, `…/events` streams its reviews and outcome (SSE, resumable),
`POST /v1/webhooks/{source}` takes signed webhooks, and `/a2a` is an A2A JSON-RPC interface.
Stateless: whatever it knows is on the bus, so replicas behind a load balancer agree.

Where to look: the routes (routes.py), the door every request passes (door.py: auth.py,
limits.py), the core every entrance shares (front.py), webhooks (webhooks.py), A2A (a2a/).
Run it with `mesh run gateway --port 8090` (the app is `services.gateway.service:app`).
"""
