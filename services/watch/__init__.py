"""The watch: a self-scheduling agent that checks the mesh's health and chooses its next check.

Where to look: the service (card, schedule, handler) in `service.py`; one check's steps in
`job.py`; what it reads from the bus in `observe.py`; its conclusions (pure) in `checks.py`; the
offline rule for the next check (pure) in `cadence.py`; the model's proposal in `advisor.py`; its
settings in `settings.py`.
"""
