"""Stripe webhooks: the endpoint (verify, store, enqueue), the handlers, the drift rules.

`blueprint` runs in the web process; `handlers`, `store`, `reads` and `drift` are
used by the jobs in `workers.stripe_events` and `workers.reconcile`.
"""
