"""The digest: a scheduled agent that sums up a window of the mesh's work and posts it to a webhook.

Where to look: the service (card, schedule, handler) in `service.py`; one tick's steps in
`job.py`; the figures (pure) in `figures.py`; the Slack message (pure) in `message.py`; the
webhook's retries in `webhook.py`; what it reads from the bus in `reading.py`; the model's
summary in `summary.py`; its settings in `settings.py`.
"""
