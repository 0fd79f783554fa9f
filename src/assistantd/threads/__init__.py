"""Threads: conversations that messages live in and runs act on."""
