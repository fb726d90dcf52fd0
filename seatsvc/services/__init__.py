"""Services: take a Session, make one change with its outbox rows, never commit."""
