"""Making Stripe follow the seat ledger: the gateway, the sync plan, the limits."""
