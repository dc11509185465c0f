"""Device mesh, partition rules and placement helpers: one mesh for training, sampling and scoring."""
