"""HTTP views: load (schema), call (one service in one transaction), dump (schema)."""
