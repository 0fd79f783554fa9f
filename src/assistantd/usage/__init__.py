"""Usage and costs: every model call's tokens by project, key, model and time, and OpenAI's
`/v1/organization/usage/*` and `/v1/organization/costs` reports over them."""
