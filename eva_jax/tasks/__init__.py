"""Embedded verifiable tasks: prompts, reference answers and corpora the project makes itself."""
