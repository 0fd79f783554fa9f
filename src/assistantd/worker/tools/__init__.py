"""The server-side tools a run calls (file_search, code_interpreter) and what they need."""
