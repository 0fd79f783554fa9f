"""API keys: each belongs to a project; only a hash of the secret is stored."""
