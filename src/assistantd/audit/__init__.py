"""The audit log: key, project, service-account and limit changes, in OpenAI's shape."""
