"""Read-only analysis of eva runs (curriculum tables for notebooks and reports)."""
