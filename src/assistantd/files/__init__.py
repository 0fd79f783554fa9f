"""Files: uploaded bytes on disk under the data dir, their metadata in the database."""
