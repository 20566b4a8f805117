"""LLM access that holds up in production: the one client every agent's model calls go through.

    client.py      LLMClient: one Messages API call, gated, retried, budgeted, priced; `shared_client`
    gate.py        rate gate per (provider, model): in-flight, requests/min, tokens/min
    retry.py       backoff with jitter, `retry-after` honoured, 529 left to the fallback chain
    breaker.py     circuit breaker per model
    structured.py  answers as a forced tool call, validated, with one repair attempt
    chain.py       an agent's ordered fallback chain (ending in `offline`) and the walk along it
    pricing.py     price table → cost per call
    spans.py       how a call shows in a trace: a GenAI `chat {model}` span, retries as events
    metrics.py     how a request shows in /metrics: counted by a fixed few statuses (bus/metrics.py)
    budget.py      a per-round budget, and the meter of one chain step
    settings.py    LLMSettings: the key, the model and every `MESH_LLM_*` setting
    config.py      checks of those settings, and each agent's chain
    setting_text.py  JSON or compact `name=…` values of those settings
    fake/          a protocol-faithful fake Anthropic server, for tests and `mesh bench llm`
    bench.py       `mesh bench llm`

Import from the modules; this package imports nothing, so `settings.py` can check values cheaply.
"""
