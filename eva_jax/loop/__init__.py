"""The eva loop: offline and online rounds, preference pairs, run state, metrics."""
