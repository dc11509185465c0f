"""Wire formats of remote reward servers: eva's own, vLLM's pooling API, OpenRLHF's remote reward model.

`request_body(...)` builds the JSON a batch of (prompt, response) pairs is posted as and
`read_rewards(...)` reads one float per pair from the answer (ValueError describing what is wrong).

eva (`server.py`, `remote.py`): {"prompts": [...], "responses": [...]} -> {"rewards": [x | null]}.

vllm (vLLM's pooling runner, `vllm serve <reward model>`; request and answer shapes of vLLM 0.11-0.18,
docs.vllm.ai/en/v0.18.0/models/pooling_models/): one conversation per request, since the chat form
takes one `messages` list; the server applies the reward model's own chat template, so nothing here
guesses it. Pairs go out concurrently (`max_concurrency`) and vLLM batches them on the device.

    POST .../classify   {"model": M, "messages": [{"role": "user", ...}, {"role": "assistant", ...}],
                         "use_activation": false, "activation": false}
    200 {"data": [{"index": 0, "label": "LABEL_0", "probs": [3.41], "num_classes": 1}], ...}

`use_activation: false` asks for the raw logit (vLLM applies a sigmoid to one-label heads by
default); `activation` is the older servers' name for it. Point the URL at `/classify` for a
sequence-classification reward model (Skywork-Reward, ...). At `/pooling` the answer is
{"data": [{"index": 0, "data": ...}]}: a number, [x], or per-token values ([[x], ...] or [x, ...]
for a reward model that pools every token), of which the last token's is the reward.

openrlhf (OpenRLHF's `openrlhf.cli.serve_rm`, v0.8.3+, and its remote-RM client): whole texts with
the chat template applied, as its trainer decodes them (special tokens kept):

    POST .../get_reward {"query": [prompt+response texts], "prompts": [prompt texts], "labels": [null]}
    200 {"rewards": [...], "scores": [...], "extra_logs": {...}}     (before v0.8.3: {"rewards"} only)

The texts come from `query_template`: a preset ("gemma", "llama3", "chatml") or a string holding
"{prompt}" and, after it, "{response}". `split_query` inverts it for our own server.
"""

from collections.abc import Sequence
import dataclasses
import math
import urllib.parse

PROTOCOLS = ("eva", "vllm", "openrlhf")

QUERY_TEMPLATES = {
  "gemma": "<bos><start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n{response}<end_of_turn>\n",
  "llama3": (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{response}<|eot_id|>"
  ),
  "chatml": "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>\n",
}


@dataclasses.dataclass(frozen=True)
class QueryTemplate:
  """`before` + prompt + `between` + response + `after`."""

  before: str
  between: str
  after: str

  def prompt_text(self, prompt: str) -> str:
    return f"{self.before}{prompt}{self.between}"

  def query(self, prompt: str, response: str) -> str:
    return f"{self.before}{prompt}{self.between}{response}{self.after}"


def query_template(spec: str) -> QueryTemplate:
  """The template a preset name or a "{prompt}...{response}" string names; ValueError otherwise."""
  text = QUERY_TEMPLATES.get(spec, spec)
  if (
    text.count("{prompt}") != 1
    or text.count("{response}") != 1
    or text.find("{prompt}") > text.find("{response}")
  ):
    raise ValueError(
      f"{spec!r} is neither a preset {sorted(QUERY_TEMPLATES)} nor a template with one {{prompt}} "
      "and, after it, one {response}"
    )
  before, rest = text.split("{prompt}")
  between, after = rest.split("{response}")
  return QueryTemplate(before, between, after)


def split_query(template: QueryTemplate, query: str, prompt_text: str | None) -> tuple[str, str]:
  """(prompt, response) of an OpenRLHF `query`, given its templated prompt when the client sent one.

  Without `prompt_text` (clients before OpenRLHF 0.6) the prompt ends at the first `between`.
  A response the model did not close (cut at the length limit) has no `after`: that is fine.
  """
  if prompt_text is not None:
    if not query.startswith(prompt_text):
      raise ValueError("a query does not start with its prompt")
    response = query[len(prompt_text) :]
  else:
    cut = query.find(template.between, len(template.before))
    if cut < 0:
      raise ValueError(f"a query has no {template.between!r} between prompt and response")
    prompt_text, response = query[: cut + len(template.between)], query[cut + len(template.between) :]
  if not (prompt_text.startswith(template.before) and prompt_text.endswith(template.between)):
    raise ValueError(f"a prompt is not in the template's form: {prompt_text[:80]!r}")
  prompt = prompt_text[len(template.before) : len(prompt_text) - len(template.between)]
  if template.after and response.endswith(template.after):
    response = response[: -len(template.after)]
  elif template.after.strip() and response.endswith(template.after.rstrip()):
    response = response[: -len(template.after.rstrip())]  # closed without the trailing newline
  return prompt, response


def pairs_per_request(protocol: str, batch_size: int) -> int:
  return 1 if protocol == "vllm" else batch_size


def request_body(
  protocol: str, prompts: Sequence[str], responses: Sequence[str], *, model: str = "", template: QueryTemplate
) -> dict:
  if protocol == "eva":
    return {"prompts": list(prompts), "responses": list(responses)}
  if protocol == "openrlhf":
    return {
      "query": [template.query(p, r) for p, r in zip(prompts, responses, strict=True)],
      "prompts": [template.prompt_text(p) for p in prompts],
      "labels": [None] * len(prompts),
    }
  if protocol == "vllm":
    if len(prompts) != 1:
      raise ValueError("the vllm protocol sends one conversation per request")
    body = {
      "messages": [{"role": "user", "content": prompts[0]}, {"role": "assistant", "content": responses[0]}],
      "use_activation": False,
      "activation": False,
    }
    return {"model": model, **body} if model else body
  raise ValueError(f"unknown reward protocol {protocol!r}; expected one of {PROTOCOLS}")


def _number(value, where: str) -> float:
  if value is None:
    return math.nan
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f"{where} is {value!r}, not a number or null")
  return float(value)


def _vllm_value(item) -> float:
  """The scalar of one vLLM `data` item: classify's probs[0], or pooling's (last token's) value."""
  if not isinstance(item, dict):
    raise ValueError(f"data[0] is {item!r}, not an object")
  if "probs" in item:
    probs = item["probs"]
    if not isinstance(probs, list) or len(probs) != 1:
      raise ValueError(f"probs is {str(probs)[:80]}; a reward model has one label (num_classes 1)")
    return _number(probs[0], "probs[0]")
  if "data" not in item:
    keys = sorted(item)
    raise ValueError(f"data[0] has neither 'probs' (/classify) nor 'data' (/pooling): keys {keys}")
  value = item["data"]
  while isinstance(value, list):  # per-token values: the last token scores the whole sequence
    if not value:
      raise ValueError("/pooling answered an empty list")
    value = value[-1]
  return _number(value, "the pooled value")


def read_rewards(protocol: str, body, expected: int) -> list[float]:
  """One float per pair from a 2xx answer's JSON `body` (null / NaN -> NaN); ValueError if unusable."""
  if protocol == "vllm":
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
      raise ValueError(f'answered JSON without a "data" list of {expected}: {str(body)[:200]}')
    return [_vllm_value(item) for item in data]
  if not isinstance(body, dict) or not isinstance(body.get("rewards"), list):
    raise ValueError(f'answered JSON without a "rewards" list: {str(body)[:200]}')
  rewards = body["rewards"]
  if len(rewards) != expected:
    raise ValueError(f"answered {len(rewards)} rewards for {expected} pairs")
  return [_number(v, f"reward {i}") for i, v in enumerate(rewards)]


def check_url(protocol: str, url: str) -> str:
  """'' if `url` suits `protocol`, else what is wrong (a vLLM URL must end in /classify or /pooling)."""
  path = urllib.parse.urlsplit(url).path.rstrip("/")
  if protocol == "vllm" and not path.endswith(("/classify", "/pooling")):
    return f"{url!r}: a vLLM reward server answers at .../classify (or .../pooling); e.g. http://host:8000/classify"
  return ""
