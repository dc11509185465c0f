"""Resume bookkeeping: which metrics records and summary rounds the latest checkpoint committed."""


def online_finished(loop, meta, summary: dict) -> bool:
  """Whether an online run's every step and its final evaluation are done (a rerun redoes nothing)."""
  if loop.mode != "online" or meta.get("step", 0) != loop.steps:
    return False
  return any(r.get("round") == "online" and r.get("step") == loop.steps for r in summary["rounds"])


def committed_record(loop, meta, online_finished: bool = False):
  """Whether a metrics.jsonl record belongs to what the checkpoint of `meta` committed.

  Axes (see `runner._offline` / `runner._online`): warmstart/* on the SFT step (committed by checkpoint 0), train/*
  on the global optimizer step, everything else on the round (offline) or RLOO step (online).
  """

  def committed(record: dict) -> bool:
    keys = [k for k in record if k not in ("step", "kind")]
    if record.get("kind") == "scalars" and keys and all(k.startswith("warmstart/") for k in keys):
      return True
    step = record["step"]
    if loop.mode == "online":
      if any(k.startswith("eval/") for k in keys):  # round 0's eval, or the final one (redone)
        return step == 0 or step < meta.get("step", 0) or online_finished
      return step < meta.get("step", 0)  # step s is written after RLOO step s + 1 finished
    if record.get("kind") == "scalars" and keys and all(k.startswith("train/") for k in keys):
      return step <= meta.get("train_steps", 0)
    return step <= meta["round"]

  return committed


def committed_rounds(rounds: list[dict], last_committed: int) -> list[dict]:
  """The summary entries of rounds up to the latest checkpoint's; later ones are redone on resume."""
  return [r for r in rounds if r["round"] <= last_committed]
