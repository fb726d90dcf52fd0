"""Stripe webhooks: the endpoint (verify, store, enqueue), the event rows, the handler table.

`blueprint` runs in the web process; `handlers` and `recovery` are used by the jobs
in `workers.stripe_events` and `workers.reconcile`. Applying Stripe's state to the
ledger is the billing domain's (`seatsvc.billing.reconcile`, `seatsvc.billing.invoices`).
"""
