"""The HTTP edge every router shares: request dependencies (the unit of work, the caller)."""
