"""Bearer tokens for reward endpoints: read from an environment variable, never logged or echoed.

Configs hold only the variable's *name*. The value lives in the process environment and in the
`Authorization` header of outgoing requests; `scrub` removes it from any text we are about to show
(a server may echo a request back in its error message).
"""

import os
import re

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REDACTED = "<redacted>"


def is_env_name(name: str) -> bool:
  return bool(_ENV_NAME.fullmatch(name))


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
