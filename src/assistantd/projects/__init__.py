"""Projects: the tenants every API object and project key belongs to."""
