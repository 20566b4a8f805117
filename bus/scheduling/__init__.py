"""Scheduled and self-scheduled agents on the NATS server's message schedules.

- declaring a schedule and the message it becomes: `specs.py` (expressions: `cron.py`);
- how a fired tick reaches its handler once (coalescing, idempotency, the next run): `ticks.py`;
- the self-scheduled guardrail: `clamp.py`;
- the schedules' records in KV: `state.py`;
- making the bus match the declarations (`mesh provision`, an agent's start): `reconcile.py`.

Agents declare schedules with `@agent.scheduled(...)` and `@agent.self_scheduled(...)` (bus/runtime.py).
"""
