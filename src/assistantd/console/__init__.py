"""The console: a browser playground and admin UI at `/console`, plain ES modules and one CSS
file shipped in the package (no build step, no CDN). It is a client of the public API only."""
