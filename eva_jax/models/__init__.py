"""Gemma models: named architectures, tokenizers, chat template, log-probs, params I/O (orbax and
Hugging Face) and the embedded task's shipped base model."""
