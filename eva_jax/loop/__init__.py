"""The eva loop: the run (runner.py), offline rounds and online steps, preference pairs, run state and
resume, the in-run evaluator, metrics, and the run's model set-up (setup.py)."""
