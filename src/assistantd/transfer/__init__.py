"""Moving in and out: `assistantd import` and `assistantd export`.

The format is the open exporter's (`redwoodworksco/assistants-api-export`,
`assistants-thread-export/v1`: a manifest, `assistants.json`, one file per thread), and
plain API list pages (`{"object": "list", "data": [...]}`) or lists of the API's own
objects. `dump` reads and checks a dump without touching the database, `objects` turns
each object into what the repositories store, `load` writes it with the original ids and
timestamps, `export` writes a project out in the same format.
"""
