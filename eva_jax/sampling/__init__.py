"""The jitted KV-cache sampler that shares the training mesh and params."""
