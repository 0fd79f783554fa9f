"""Runs and run steps: an assistant working on a thread."""
