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
# arena-hard-auto's layout since v2.0 (data/arena-hard-v2.0/question.jsonl).
ARENA_HARD_V2 = [
  {"uid": "2edbb5f36f5b42be", "category": "hard_prompt", "subcategory": "coding", "prompt": "Write a poem."},
  {
    "uid": "0253f09025cc40cd",
    "category": "creative_writing",
    "subcategory": "creative_writing",
    "prompt": "Add 3 and 4.",
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
    arena_hard_questions=_write_jsonl(inputs / "arena_hard.jsonl", ARENA_HARD_V2),
    mt_bench_questions=_write_jsonl(inputs / "mt_bench.jsonl", MT_BENCH),
    alpaca_eval_instructions=str(inputs / "alpaca_eval.json"),
    category_temperatures=False,
    temperature=0.0,
    top_p=1.0,
    max_new_tokens=12,
    mt_bench_max_new_tokens=0,
    max_cache_length=256,
    batch_size=32,
    long_prompts="truncate",
  )
  out = tmp_path_factory.mktemp("benchmarks")
  return out, {e.benchmark: e for e in exports.run_exports(lambda benchmark: responder, cfg, out)}


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


def test_arena_hard_v2_answers(exported, responder, tokenizer):
  answers = _jsonl(exported[1]["arena_hard"].path)
  assert [a["uid"] for a in answers] == [q["uid"] for q in ARENA_HARD_V2]
  assert all(a["model"] == "eva-tiny_r1" and isinstance(a["tstamp"], float) for a in answers)
  assert len({a["ans_id"] for a in answers}) == 2
  expected = responder([q["prompt"] for q in ARENA_HARD_V2], 0, None)
  for answer, question, text in zip(answers, ARENA_HARD_V2, expected):
    # gen_judgment.py reads the answer at messages[-1]["content"]["answer"].
    assert answer["messages"] == [
      {"role": "user", "content": question["prompt"]},
      {"role": "assistant", "content": {"answer": text}},
    ]
    # show_result.py's style control: token_len first, then the markdown counts (tiktoken is not
    # installed here, so the solver's tokenizer counted; the answer says so).
    assert list(answer["metadata"]) == ["token_len", "header_count", "list_count", "bold_count"]
    assert answer["metadata"]["token_len"] == len(tokenizer.encode(text))
    assert answer["metadata"]["header_count"] == exports.markdown_counts(text)["header_count"]
    assert answer["token_len_tokenizer"] == "solver"
  assert validators.check_arena_hard_answers(exported[1]["arena_hard"].path, ARENA_HARD_V2) == 2


def test_arena_hard_v01_layout_is_still_written(tmp_path, responder, tokenizer):
  done = exports.export_answers(
    "arena_hard", responder, _write_jsonl(tmp_path / "q.jsonl", ARENA_HARD), tmp_path / "out", "eva-tiny_r1"
  )
  answers = _jsonl(done.path)
  assert [a["question_id"] for a in answers] == ["a1f3", "c9d0"]
  assert all(a["model_id"] == "eva-tiny_r1" and isinstance(a["tstamp"], float) for a in answers)
  turns = [a["choices"][0]["turns"] for a in answers]
  assert [len(t) for t in turns] == [1, 2]
  first = responder([q["turns"][0]["content"] for q in ARENA_HARD], 0, None)
  assert [t[0]["content"] for t in turns] == first
  second = responder([generation.sampler_prompt([("Add 3 and 4.", first[1])], "Now add 5 more.")], 1, None)
  assert turns[1][1]["content"] == second[0]
  for turn in (t for ts in turns for t in ts):
    assert turn["token_len"] == len(tokenizer.encode(turn["content"]))
  assert validators.check_arena_hard_answers(done.path, ARENA_HARD) == 2


def test_markdown_counts_follow_arena_hard_autos_definitions():
  text = "# T\n## S\n1. a\n2. b\n - c\n**bold** and __b__\n```\n# not a header\n- nor a list\n```\n"
  assert exports.markdown_counts(text) == {
    "header_count": {"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
    "list_count": {"ordered": 2, "unordered": 1},
    "bold_count": {"**": 1, "__": 1},
  }


@pytest.mark.parametrize(
  "text, expected",
  [
    # The block's inner text also stands outside it: arena-hard-auto deletes it there too.
    ("Use **bold** here: ```**bold**``` and **bold**.", {"bold_count": {"**": 0, "__": 0}}),
    # An empty block's inner text is "\n": every newline goes, so only the first line starts a line.
    (
      "# A\n## B\n```\n```\n- x\n",
      {"header_count": {"h1": 1, "h2": 0}, "list_count": {"ordered": 0, "unordered": 0}},
    ),
    # Several blocks, deleted one after the other: "a" then "b" leave "****", no bold span.
    ("```a```\n**a**\n```b```\n", {"bold_count": {"**": 0, "__": 0}}),
    # A block with no inner text: str.replace("", "") changes nothing.
    ("``````\n- x\n", {"list_count": {"ordered": 0, "unordered": 1}}),
  ],
)
def test_markdown_counts_keep_arena_hard_autos_code_block_quirks(text, expected):
  counts = exports.markdown_counts(text)
  for group, values in expected.items():
    assert {k: counts[group][k] for k in values} == values, group


LONG = {
  "uid": "long1",
  "category": "hard_prompt",
  "prompt": "Context: " + "7 + 8 = 51, " * 60 + "What is 3 + 4?",
}


@pytest.fixture(scope="module")
def short_cache(tiny_model, sft_params, tokenizer):
  """A responder whose cache leaves 52 prompt tokens: the LONG question does not fit."""
  sampling = sampler.SamplingConfig(max_new_tokens=12, temperature=0.0, top_p=1.0, max_cache_length=64)
  return lambda policy: generation.Responder(
    tiny_model, sft_params, tokenizer, sampling, jax.random.key(0), progress=False, long_prompts=policy
  )


def test_a_long_question_is_truncated_from_the_left_and_counted(tmp_path, short_cache, tokenizer, capfd):
  respond = short_cache("truncate")
  questions = _write_jsonl(tmp_path / "q.jsonl", [ARENA_HARD_V2[0], LONG])
  done = exports.export_answers("arena_hard", respond, questions, tmp_path / "out", "m")
  assert (done.count, done.truncated, done.skipped) == (2, 1, 0)
  (fitted,) = respond.fitted
  assert fitted.tokens > fitted.limit == 52 and fitted.cut_tokens >= fitted.tokens - 52
  assert "1 question(s) cut from the left to fit the cache" in capfd.readouterr().err
  cut = tokenizer.decode(tokenizer.encode(LONG["prompt"])[fitted.cut_tokens :])
  assert LONG["prompt"].endswith(cut) and cut.endswith("What is 3 + 4?")  # the ask is kept
  assert _jsonl(done.path)[1]["messages"][0]["content"] == LONG["prompt"]  # the file holds the question
  assert _jsonl(done.path)[1]["messages"][1]["content"]["answer"] == respond([cut], 0, None)[0]


def test_a_long_question_is_skipped_and_listed_or_fails(tmp_path, short_cache):
  questions = _write_jsonl(tmp_path / "q.jsonl", [ARENA_HARD_V2[0], LONG])
  done = exports.export_answers("arena_hard", short_cache("skip"), questions, tmp_path / "out", "m")
  assert (done.count, done.truncated, done.skipped) == (1, 0, 1)
  assert [a["uid"] for a in _jsonl(done.path)] == [ARENA_HARD_V2[0]["uid"]]
  (listed,) = json.loads((done.path.parent / "m.skipped.json").read_text())
  assert listed["id"] == "long1" and listed["cut_tokens"] is None and listed["limit"] == 52
  with pytest.raises(ValueError, match="prompt 1 has .* tokens .* the limit is 52"):
    exports.export_answers("arena_hard", short_cache("fail"), questions, tmp_path / "out2", "m")
  assert not (tmp_path / "out2").exists()


def test_an_answer_file_that_fails_its_check_is_never_put_in_place(tmp_path, echo, monkeypatch):
  questions = _write_jsonl(tmp_path / "q.jsonl", ARENA_HARD_V2)
  record = exports._answer_record
  monkeypatch.setattr(
    exports, "_answer_record", lambda *a: {k: v for k, v in record(*a).items() if k != "ans_id"}
  )
  with pytest.raises(validators.FormatError, match=r"\.m\.jsonl\.tmp: line 1: missing field 'ans_id'"):
    exports.export_answers("arena_hard", echo, questions, tmp_path / "out", "m")
  assert list((tmp_path / "out" / "model_answer").iterdir()) == []


def test_question_files_are_read_before_the_model_is_built(tmp_path, monkeypatch):
  from configs import quickstart
  from eva_jax import config as config_lib
  from eva_jax.jobs import evaluate
  from eva_jax.loop import setup

  (tmp_path / "q.jsonl").write_text(json.dumps(ARENA_HARD_V2[0]) + "\n" + json.dumps(ARENA_HARD[0]) + "\n")
  config = config_lib.override(
    quickstart.get_config(), {"eval.export.arena_hard_questions": str(tmp_path / "q.jsonl")}
  )
  cfg = config_lib.parse(config, jax.device_count())
  monkeypatch.setattr(
    setup, "build", lambda cfg: pytest.fail("the model was built before the questions were checked")
  )
  with pytest.raises(validators.FormatError, match="q.jsonl: line 2: mixes Arena-Hard layouts"):
    evaluate.run(cfg, tmp_path / "run")
  config.eval.export.arena_hard_questions = str(tmp_path / "missing.jsonl")
  with pytest.raises(FileNotFoundError, match="arena_hard question file .*missing.jsonl does not exist"):
    evaluate.run(config_lib.parse(config, jax.device_count()), tmp_path / "run")


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
