"""`GET /v1/models`: the model names this server routes, in OpenAI's shape."""
