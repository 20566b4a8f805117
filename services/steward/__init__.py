"""The steward: a daemon agent that keeps each service's record, risk level and history.

service.py    the agent: its card, its state, its appliers, its HTTP app (`mesh run steward`)
state.py      the state model and its bounds (one KV value, proven by a test)
apply.py      events -> state, and what to publish (pure)
risk.py       the risk rule (pure)
views.py      state -> what the HTTP API answers (pure)
routes.py     GET /services, /services/{name}, /services/{name}/history
history.py    the history stream, searched by service, rule, outcome and time
answering.py  history requests over NATS request-reply (`<ns>.steward.history.<service>`)
client.py     what a reviewer calls to put a service's history into a model's context
settings.py   StewardSettings
"""
