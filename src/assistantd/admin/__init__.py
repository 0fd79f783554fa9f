"""OpenAI's admin API (`/v1/organization/*`): projects, admin keys, service accounts,
project keys and the audit log. Admin keys only (`api.deps.AdminCaller`)."""
