"""Benchmark answer files from the tiny model: the three formats round-trip through their validators."""

import json

import jax
import pytest

from eva_jax.evaluation import exports
from eva_jax.evaluation import generation
from eva_jax.evaluation import validators
from eva_jax.evaluation.config import ExportConfig
from eva_jax.sampling import sampler

# Sized so that the exports compile three sampler programs in all: 2 prompts of up to 32 tokens,
# 1 and 2 prompts of up to 64 tokens.
ARENA_HARD = [
  {
    "question_id": "a1f3",
    "category": "arena-hard-v0.1",
    "cluster": "Poems",
    "turns": [{"content": "Write a poem."}],
  },
  {
    "question_id": "c9d0",
    "category": "arena-hard-v0.1",
    "cluster": "Chat",
    "turns": [{"content": "Add 3 and 4."}, {"content": "Now add 5 more."}],
  },
]
MT_BENCH = [
  {"question_id": 81, "category": "writing", "turns": ["Write a short note.", "Rewrite it as a rhyme."]},
  {"question_id": 111, "category": "math", "turns": ["What is 5 + 7?", "And 12 + 30?"]},
]
ALPACA_EVAL = [
  {"instruction": "Give a tip for sleep.", "dataset": "helpful_base", "output": "Rest.", "generator": "gpt4"},
  {"instruction": "Name a color."},
]


def _write_jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


@pytest.fixture(scope="module")
def responder(tiny_model, sft_params, tokenizer):
  sampling = sampler.SamplingConfig(max_new_tokens=12, temperature=0.0, top_p=1.0, max_cache_length=256)
  return generation.Responder(tiny_model, sft_params, tokenizer, sampling, jax.random.key(0), progress=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, responder):
  inputs = tmp_path_factory.mktemp("questions")
  (inputs / "alpaca_eval.json").write_text(json.dumps(ALPACA_EVAL))
  cfg = ExportConfig(
    dir="",
    model_id="eva-tiny_r1",
    arena_hard_questions=_write_jsonl(inputs / "arena_hard.jsonl", ARENA_HARD),
    mt_bench_questions=_write_jsonl(inputs / "mt_bench.jsonl", MT_BENCH),
    alpaca_eval_instructions=str(inputs / "alpaca_eval.json"),
    category_temperatures=False,
    temperature=0.0,
    top_p=1.0,
    max_new_tokens=12,
    max_cache_length=256,
    batch_size=32,
  )
  out = tmp_path_factory.mktemp("benchmarks")
  return out, {e.benchmark: e for e in exports.run_exports(responder, cfg, out)}


def _jsonl(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_layout_and_counts(exported):
  out, done = exported
  assert {name: (e.path, e.count) for name, e in done.items()} == {
    "arena_hard": (out / "arena_hard" / "model_answer" / "eva-tiny_r1.jsonl", 2),
    "mt_bench": (out / "mt_bench" / "model_answer" / "eva-tiny_r1.jsonl", 2),
    "alpaca_eval": (out / "alpaca_eval" / "eva-tiny_r1" / "model_outputs.json", 2),
  }
  assert sorted(p.name for p in (out / "arena_hard" / "model_answer").iterdir()) == ["eva-tiny_r1.jsonl"]


def test_arena_hard_answers(exported, responder, tokenizer):
  answers = _jsonl(exported[1]["arena_hard"].path)
  assert [a["question_id"] for a in answers] == ["a1f3", "c9d0"]
  assert all(a["model_id"] == "eva-tiny_r1" and isinstance(a["tstamp"], float) for a in answers)
  assert len({a["answer_id"] for a in answers}) == 2
  turns = [a["choices"][0]["turns"] for a in answers]
  assert [len(t) for t in turns] == [1, 2]
  first = responder([q["turns"][0]["content"] for q in ARENA_HARD], 0, None)
  assert [t[0]["content"] for t in turns] == first
  second = responder([generation.sampler_prompt([("Add 3 and 4.", first[1])], "Now add 5 more.")], 1, None)
  assert turns[1][1]["content"] == second[0]
  for turn in (t for ts in turns for t in ts):
    assert turn["token_len"] == len(tokenizer.encode(turn["content"]))
  assert validators.check_arena_hard_answers(exported[1]["arena_hard"].path, ARENA_HARD) == 2


def test_mt_bench_second_turn_sees_the_first(exported, responder):
  answers = _jsonl(exported[1]["mt_bench"].path)
  assert [a["question_id"] for a in answers] == [81, 111]
  turns = [a["choices"][0]["turns"] for a in answers]
  first = responder([q["turns"][0] for q in MT_BENCH], 0, None)
  second = responder(
    [generation.sampler_prompt([(q["turns"][0], a)], q["turns"][1]) for q, a in zip(MT_BENCH, first)], 1, None
  )
  assert turns == [[a, b] for a, b in zip(first, second)]
  assert validators.check_mt_bench_answers(exported[1]["mt_bench"].path, MT_BENCH) == 2


def test_alpaca_eval_outputs(exported, responder):
  outputs = json.loads(exported[1]["alpaca_eval"].path.read_text())
  expected = responder([item["instruction"] for item in ALPACA_EVAL], 0, None)
  assert outputs == [
    {
      "instruction": "Give a tip for sleep.",
      "output": expected[0],
      "generator": "eva-tiny_r1",
      "dataset": "helpful_base",
    },
    {"instruction": "Name a color.", "output": expected[1], "generator": "eva-tiny_r1"},
  ]


def test_per_category_temperatures_follow_fastchat(tmp_path, echo):
  done = exports.export_answers(
    "mt_bench",
    echo,
    _write_jsonl(tmp_path / "q.jsonl", MT_BENCH),
    tmp_path / "out",
    "m",
    category_temperatures=True,
  )
  assert [(key, temp) for key, temp, _ in echo.calls] == [(0, 0.7), (1, 0.0), (2, 0.7), (3, 0.0)]
  assert echo.calls[2][2] == [
    generation.sampler_prompt([("Write a short note.", "answer 0.0")], "Rewrite it as a rhyme.")
  ]
  answers = _jsonl(done.path)
  assert answers[1]["choices"][0]["turns"] == ["answer 1.0", "answer 3.0"]


def test_answer_ids_are_stable_and_distinct():
  assert exports.answer_id("m", 81, ["a", "b"]) == exports.answer_id("m", 81, ["a", "b"])
  assert (
    len(
      {
        exports.answer_id("m", 81, ["a"]),
        exports.answer_id("m", "81", ["a"]),
        exports.answer_id("n", 81, ["a"]),
      }
    )
    == 3
  )


def test_bad_inputs_fail_before_any_sampling(tmp_path, echo):
  mt_bench = _write_jsonl(tmp_path / "mt.jsonl", MT_BENCH)
  arena_hard = _write_jsonl(tmp_path / "arena.jsonl", ARENA_HARD)
  with pytest.raises(ValueError, match="model id 'a/b'"):
    exports.export_answers("mt_bench", echo, mt_bench, tmp_path, "a/b")
  (tmp_path / "bad.jsonl").write_text(json.dumps(MT_BENCH[0]) + "\n{oops\n")
  with pytest.raises(validators.FormatError, match="bad.jsonl: line 2: not valid JSON"):
    exports.export_answers("mt_bench", echo, str(tmp_path / "bad.jsonl"), tmp_path, "m")
  with pytest.raises(validators.FormatError, match="line 1: field 'turns' must hold 2 questions"):
    exports.export_answers("mt_bench", echo, arena_hard, tmp_path, "m")
  with pytest.raises(validators.FormatError, match="line 1: 'turns\\[0\\]' must be an object"):
    exports.export_answers("arena_hard", echo, mt_bench, tmp_path, "m")
  with pytest.raises(ValueError, match="unknown benchmark 'vicuna'"):
    exports.export_answers("vicuna", echo, mt_bench, tmp_path, "m")
  assert echo.calls == [] and not (tmp_path / "model_answer").exists()
