"""The approvals notifier: tells people, at an outbound webhook, that a release waits for them."""
