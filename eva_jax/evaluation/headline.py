"""The run's headline: a few task-independent numbers a script reads from `summary.json`.

The frontier is the first held-out bucket beyond the seeds' difficulty (where eva's curriculum
should help); the easy side is the worst bucket at or below it (where forgetting would show). Both
come from the task (`Task.frontier_bucket`, `Task.easy_buckets`), so a reader needs no task knowledge.
"""

from eva_jax.tasks import Task

NAN = float("nan")


def headline(rounds: list[dict], task: Task | None, seconds: float) -> dict:
  """{frontier_exact_round0, frontier_exact_last, frontier_reward_round0, frontier_reward_last,
  easy_exact_round0, easy_exact_last, frontier_bucket, seconds} from the summary's round entries.

  Values are NaN where the run has no task or no evaluation of that round (round 0 = the first
  entry with an evaluation, last = the last one).
  """
  out = {"seconds": float(seconds)}
  evaluated = [r["eval"] for r in rounds if r.get("eval")]
  if task is None or not task.frontier_bucket or not evaluated:
    return out | {
      k: NAN
      for k in (
        "frontier_exact_round0",
        "frontier_exact_last",
        "frontier_reward_round0",
        "frontier_reward_last",
        "easy_exact_round0",
        "easy_exact_last",
      )
    }
  first, last = evaluated[0], evaluated[-1]

  def value(evaluation: dict, key: str) -> float:
    return float(evaluation.get(key, NAN))

  def easy(evaluation: dict) -> float:
    values = [value(evaluation, f"eval/exact_match/{b}") for b in task.easy_buckets]
    return min(values) if values else NAN

  frontier = task.frontier_bucket
  return out | {
    "frontier_bucket": frontier,
    "frontier_exact_round0": value(first, f"eval/exact_match/{frontier}"),
    "frontier_exact_last": value(last, f"eval/exact_match/{frontier}"),
    "frontier_reward_round0": value(first, f"eval/task_reward/{frontier}"),
    "frontier_reward_last": value(last, f"eval/task_reward/{frontier}"),
    "easy_exact_round0": easy(first),
    "easy_exact_last": easy(last),
  }


def describe(h: dict) -> str:
  """One line for the end of a run: the frontier and easy exact match, round 0 -> last."""
  if "frontier_bucket" not in h:
    return f"headline: no task buckets to report ({h['seconds']:.0f} s)"
  return (
    f"headline: frontier bucket {h['frontier_bucket']} exact {h['frontier_exact_round0']:.2f} -> "
    f"{h['frontier_exact_last']:.2f} ({h['frontier_exact_last'] - h['frontier_exact_round0']:+.2f}), reward "
    f"{h['frontier_reward_round0']:.3f} -> {h['frontier_reward_last']:.3f}; worst easy bucket exact "
    f"{h['easy_exact_round0']:.2f} -> {h['easy_exact_last']:.2f}; {h['seconds']:.0f} s"
  )
