"""Vector stores: files attached to stores, ingested in the background, searched hybrid.

`service` holds the API's rules and the functions the run engine calls (`search_stores`,
`create_store_with_files`, `add_files`, `wait_ready`); `ingest` the background worker that
parses, chunks and embeds attached files with the `retrieval` engine; `references` the
check, for every service, that the files and stores a request names are the project's.
"""
