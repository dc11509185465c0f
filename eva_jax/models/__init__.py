"""Gemma models: named architectures, tokenizers, chat template, log-probs and params I/O."""
