"""An httpx transport on which one deadline bounds a whole request: connect, send, status line, headers, body.

httpx's timeouts bound each network operation (one connect, one read, one write), so a server that
sends its status line, headers or body a byte at a time holds a request for as long as it likes
(httpx issue #1450, open). `DeadlineTransport` is httpcore's connection pool, as httpx's own
transport uses it, over a network backend whose reads and writes get only the time left before the
deadline the calling thread set with `deadline(seconds)`; once it has passed they fail with
`httpx.ReadTimeout` / `WriteTimeout` / `ConnectTimeout`, as a per-operation timeout would. Outside
a `deadline` block the transport behaves like httpx's. Only public httpx and httpcore APIs are used.

`uses_env_proxy(url)` says whether the environment (HTTP_PROXY, ...) routes `url` through a proxy;
the client keeps httpx's own transport there, which honours it.
"""

from collections.abc import Iterator
import contextlib
import threading
import time
import urllib.parse
import urllib.request

import httpcore
import httpx

_local = threading.local()  # .at: this thread's deadline (time.monotonic()), or None


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
  """Network operations of this thread inside the block must all end within `seconds` from now."""
  previous = getattr(_local, "at", None)
  _local.at = time.monotonic() + seconds
  try:
    yield
  finally:
    _local.at = previous


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
  """`timeout` cut to the time left before this thread's deadline; `error` once it has passed."""
  at = getattr(_local, "at", None)
  if at is None:
    return timeout
  left = at - time.monotonic()
  if left <= 0:
    raise error("the request's deadline passed")
  return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
  def __init__(self, inner: httpcore.NetworkStream):
    self._inner = inner

  def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
    return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

  def write(self, buffer: bytes, timeout: float | None = None) -> None:
    self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

  def close(self) -> None:
    self._inner.close()

  def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
    timeout = _time_left(timeout, httpcore.ConnectTimeout)
    return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

  def get_extra_info(self, info: str):
    return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
  def __init__(self):
    self._inner = httpcore.SyncBackend()

  def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
    timeout = _time_left(timeout, httpcore.ConnectTimeout)
    return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

  def connect_unix_socket(self, path, timeout=None, socket_options=None):
    timeout = _time_left(timeout, httpcore.ConnectTimeout)
    return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

  def sleep(self, seconds: float) -> None:
    self._inner.sleep(seconds)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
  """httpcore's exceptions as httpx's classes of the same name (httpx's own transport does the same)."""
  try:
    yield
  except Exception as e:
    for cls in type(e).__mro__:
      if cls.__module__.startswith("httpcore") and isinstance(getattr(httpx, cls.__name__, None), type):
        raise getattr(httpx, cls.__name__)(str(e)) from e
    raise


class _Body(httpx.SyncByteStream):
  def __init__(self, stream):
    self._stream = stream

  def __iter__(self) -> Iterator[bytes]:
    with _httpx_errors():
      yield from self._stream

  def close(self) -> None:
    if hasattr(self._stream, "close"):
      self._stream.close()


class DeadlineTransport(httpx.BaseTransport):
  """HTTP/1.1 over httpcore's pool whose socket operations respect `deadline` (see the module docstring)."""

  def __init__(self, limits: httpx.Limits):
    self._pool = httpcore.ConnectionPool(
      ssl_context=httpx.create_ssl_context(),
      max_connections=limits.max_connections,
      max_keepalive_connections=limits.max_keepalive_connections,
      keepalive_expiry=limits.keepalive_expiry,
      network_backend=_Backend(),
    )

  def handle_request(self, request: httpx.Request) -> httpx.Response:
    url = httpcore.URL(
      scheme=request.url.raw_scheme,
      host=request.url.raw_host,
      port=request.url.port,
      target=request.url.raw_path,
    )
    sent = httpcore.Request(
      request.method, url, headers=request.headers.raw, content=request.stream, extensions=request.extensions
    )
    with _httpx_errors():
      response = self._pool.handle_request(sent)
    return httpx.Response(
      response.status, headers=response.headers, stream=_Body(response.stream), extensions=response.extensions
    )

  def close(self) -> None:
    self._pool.close()


def uses_env_proxy(url: str) -> bool:
  """Whether HTTP_PROXY / HTTPS_PROXY / ALL_PROXY (less NO_PROXY) route `url` through a proxy."""
  parts = urllib.parse.urlsplit(url)
  proxies = urllib.request.getproxies_environment()
  if not (proxies.get(parts.scheme) or proxies.get("all")):
    return False
  return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)
