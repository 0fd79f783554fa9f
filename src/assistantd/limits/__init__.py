"""Rate limits and spend limits per project (and model), enforced on the run endpoints."""
