"""Assistants: a model, instructions and tools that runs use."""
