"""One wall-clock limit for every subprocess a test starts: a hang guard, never a speed check.

CPU-bound work on a loaded 2-core CI machine runs several times slower than on a quiet one (a reward
model's first step took 39 s there), so a limit tight enough to measure speed fails good runs. Speed
is measured in `bench/`; this only stops a process that will never finish, well inside CI's budget.
"""

HANG_GUARD_S = 3000
