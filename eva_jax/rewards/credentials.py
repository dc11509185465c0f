"""Bearer tokens for reward endpoints: read from an environment variable, never logged or echoed.

Configs hold only the variable's *name*. The value lives in the process environment and in the
`Authorization` header of outgoing requests; `scrub` removes it from any text we are about to show
(a server may echo a request back in its error message).

A name given where a key was meant is refused without being echoed. Keys in the `sk-...` style are
no variable names; Stripe's `sk_live_...` or GitHub's `ghp_...` are, so a name is also refused when
one of its `_`-separated parts looks random: 8 or more characters mixing letters and digits, or 20
or more of any. Variable names are words (`OPENAI_API_KEY`, `RM_KEY_20240101`), so they pass.
"""

import os
import re

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REDACTED = "<redacted>"


def _looks_random(part: str) -> bool:
  mixed = any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
  return (len(part) >= 8 and mixed) or len(part) >= 20


def is_env_name(name: str) -> bool:
  """Whether `name` can be an environment variable's name and does not look like a key itself."""
  return bool(_ENV_NAME.fullmatch(name)) and not any(_looks_random(part) for part in name.split("_"))


def read_api_key(env_name: str, field: str = "config.reward.api_key_env") -> str | None:
  """The token in `$env_name` (None when `env_name` is ""); ValueError naming the variable if unset.

  `field` names the setting the variable name came from, for the error message.
  """
  if not env_name:
    return None
  if not is_env_name(env_name):
    raise ValueError(f"{field}: must be the NAME of an environment variable, not the key itself")
  value = os.environ.get(env_name, "")
  if not value:
    raise ValueError(f"{field}: environment variable {env_name} is not set or empty")
  return value


def scrub(text: str, secret: str | None) -> str:
  """`text` with every occurrence of `secret` replaced."""
  return text.replace(secret, REDACTED) if secret else text
