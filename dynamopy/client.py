"""An httpx client for dynamopy (sync and async), used by the CLI, the tests and users.

    from dynamopy.client import Client
    with Client("http://127.0.0.1:8001") as c:
        c.put("photos/cat.jpg", b"...", content_type="image/jpeg")
        item = c.get("photos/cat.jpg")      # Item(key, value, version, content_type)

Errors from the cluster raise :class:`DynamoError` with the contract's status, code and body.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8001"


class DynamoError(Exception):
    """The cluster answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, detail: str, body: Optional[dict] = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.body = status, code, detail, body or {}


@dataclass(frozen=True)
class Item:
    key: str
    value: bytes
    version: int
    content_type: str


def key_path(key: str) -> str:
    """Percent-encode a key for the path; every reserved character, '/' included. A key
    that is "." or ".." has its dots encoded too: as a path segment of its own, httpx (as
    any URL library, RFC 3986 5.2.4) would drop it and send the request to /kv or /."""
    path = quote(key, safe="")
    return path.replace(".", "%2E") if path in (".", "..") else path


def _params(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
        code, detail = body.get("error", "error"), body.get("detail", resp.text)
    except ValueError:
        body, code, detail = None, "error", resp.text
    raise DynamoError(resp.status_code, code, detail, body)


def _item(key: str, resp: httpx.Response) -> Item:
    try:
        version = int(resp.headers["etag"].strip('"'))
    except (KeyError, ValueError):   # a redirect, or --url names something else
        raise DynamoError(resp.status_code, "bad_answer",
                          f"the answer for {key!r} carries no version (ETag): is "
                          f"{resp.request.url.copy_with(path='/', query=None)} a dynamopy "
                          "node?") from None
    return Item(key, resp.content, version,
                resp.headers.get("content-type", "application/octet-stream"))


@functools.lru_cache(maxsize=1)
def default_tls_context() -> ssl.SSLContext:
    """What httpx builds for ``verify=True`` (the system's CAs, certifi's bundle), built once
    per process: building it loads the whole bundle (tens of ms of CPU), and a program that
    makes many clients (tests, benchmarks, polls) paid that for every one."""
    return httpx.create_ssl_context()


def _verify(ca: Optional[str]) -> ssl.SSLContext:
    """HTTPS: trust the CA bundle at ``ca`` (a cluster with its own CA), else the system's."""
    if not ca:
        return default_tls_context()
    try:
        return ssl.create_default_context(cafile=ca)
    except OSError as e:  # missing file, not PEM: a usage error, reported in one line
        raise ValueError(f"CA bundle {ca!r}: {e}") from None


def _headers(token: Optional[str]) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


SESSION_HEADER = "X-Dynamopy-After"


class Session:
    """The largest version this client saw per key (a session token, as Cosmos DB's).

    Each request for a key sends ``X-Dynamopy-After: <version>``: a write is stamped above it
    and a read answers only with a version at least that new (else 503 ``stale_session``),
    so a client reads its own writes and never goes back in time, whichever node it asks and
    whatever R/W it uses. Bounded: the least recently used keys are forgotten first.
    """

    def __init__(self, max_keys: int = 100_000, path: Optional[str] = None):
        self.max_keys = max_keys
        self.path = path  # set by load(): the client saves the session there when it closes
        self.versions: OrderedDict[str, int] = OrderedDict()

    def headers(self, key: str) -> dict:
        v = self.versions.get(key)
        return {SESSION_HEADER: str(v)} if v else {}

    def saw(self, key: str, version: Optional[int]) -> None:
        if not version:
            return
        if version > self.versions.get(key, 0):
            self.versions[key] = version
        if key in self.versions:
            self.versions.move_to_end(key)
        while len(self.versions) > self.max_keys:
            self.versions.popitem(last=False)

    @classmethod
    def load(cls, path: str) -> "Session":
        """A session kept in a JSON file ({key: version}); a missing file is a new one.
        A client using it writes it back when it closes."""
        s = cls(path=path)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return s
        except (ValueError, RecursionError):   # (RecursionError: nested too deeply)
            raise ValueError(f"session file {path} is not a JSON object of key: "
                             "version") from None
        if not isinstance(data, dict):
            raise ValueError(f"session file {path} is not a JSON object of key: version")
        for key, version in data.items():
            if isinstance(version, int):
                s.saw(key, version)
        return s

    def save(self, path: Optional[str] = None) -> None:
        path = path or self.path
        if path is None:
            return
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(dict(self.versions), f)
        os.replace(tmp, path)

    def saw_error(self, key: str, e: "DynamoError") -> None:
        """A 404 of a deleted key carries the tombstone's version."""
        if e.status == 404 and isinstance(e.body.get("version"), int):
            self.saw(key, e.body["version"])


def _session(session: Union[bool, Session, None]) -> Optional[Session]:
    if session is True:
        return Session()
    return session or None


class Client:
    """``ca``: path of the PEM CA bundle that issued the nodes' certificates, for a cluster
    serving HTTPS with its own CA (``--tls-ca``); by default the system's CAs are trusted.
    ``session=True`` (the default) keeps a :class:`Session`; pass ``False`` for none, or a
    Session to share one between clients (e.g. one per node)."""

    def __init__(self, url: str = DEFAULT_URL, *, token: Optional[str] = None,
                 timeout_s: float = 10.0, ca: Optional[str] = None,
                 session: Union[bool, Session, None] = True):
        self.url = url.rstrip("/")
        self.token = token
        self.ca = ca
        self.session = _session(session)
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=_headers(token),
                                 verify=_verify(ca))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
        if self.session is not None:
            self.session.save()

    def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise DynamoError(0, "unreachable", f"{self.url}: {e}") from e
        _raise_for(resp)
        return resp

    def _send_kv(self, method: str, key: str, headers: Optional[dict] = None,
                 **kw) -> httpx.Response:
        s = self.session
        if s is None:
            return self._send(method, f"/kv/{key_path(key)}", headers=headers or {}, **kw)
        try:
            return self._send(method, f"/kv/{key_path(key)}",
                              headers={**(headers or {}), **s.headers(key)}, **kw)
        except DynamoError as e:
            s.saw_error(key, e)
            raise

    def put(self, key: str, value: Union[bytes, str], *, w: Optional[int] = None,
            content_type: Optional[str] = None, strict: Optional[bool] = None) -> dict:
        data = value.encode() if isinstance(value, str) else value
        headers = {"content-type": content_type} if content_type else {}
        out = self._send_kv("PUT", key, headers, content=data,
                            params=_params(w=w, strict=strict)).json()
        if self.session is not None:
            self.session.saw(key, out.get("version"))
        return out

    def get(self, key: str, *, r: Optional[int] = None, strict: Optional[bool] = None) -> Item:
        item = _item(key, self._send_kv("GET", key, params=_params(r=r, strict=strict)))
        if self.session is not None:
            self.session.saw(key, item.version)
        return item

    def delete(self, key: str, *, w: Optional[int] = None) -> dict:
        out = self._send_kv("DELETE", key, params=_params(w=w)).json()
        if self.session is not None:
            self.session.saw(key, out.get("version"))
        return out

    def cluster(self) -> dict:
        return self._send("GET", "/cluster").json()

    def preference_list(self, key: str) -> list[str]:
        return self._send("GET", f"/cluster/preference-list/{key_path(key)}").json()["nodes"]

    def log(self, since: int = 0) -> list[dict]:
        return self._send("GET", "/cluster/log", params={"since": since}).json()["entries"]

    def node(self) -> dict:
        return self._send("GET", "/node").json()

    def node_record(self, key: str) -> Optional[dict]:
        try:
            return self._send("GET", f"/node/kv/{key_path(key)}").json()
        except DynamoError as e:
            if e.status == 404:
                return None
            raise

    def join(self, member_id: str, url: str, peer: str) -> dict:
        return self._send("POST", "/cluster/members",
                          json={"id": member_id, "url": url, "peer": peer}).json()

    def set_config(self, **settings) -> dict:
        return self._send("POST", "/cluster/config", json=settings).json()

    def leave(self, member_id: str) -> dict:
        return self._send("POST", f"/cluster/members/{quote(member_id, safe='')}/leave").json()

    def remove(self, member_id: str, *, force: bool = False) -> dict:
        return self._send("DELETE", f"/cluster/members/{quote(member_id, safe='')}",
                          params={"force": "true"} if force else {}).json()

    def ready(self) -> bool:
        try:
            return self.http.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False


class AsyncClient:
    """The same calls as :class:`Client`, awaitable."""

    def __init__(self, url: str = DEFAULT_URL, *, token: Optional[str] = None,
                 timeout_s: float = 10.0, ca: Optional[str] = None,
                 session: Union[bool, Session, None] = True, **httpx_kw: Any):
        self.url = url.rstrip("/")
        httpx_kw.setdefault("verify", _verify(ca))
        self.session = _session(session)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s,
                                      headers=_headers(token), **httpx_kw)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.session is not None:
            self.session.save()

    async def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = await self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise DynamoError(0, "unreachable", f"{self.url}: {e}") from e
        _raise_for(resp)
        return resp

    async def _send_kv(self, method: str, key: str, headers: Optional[dict] = None,
                       **kw) -> httpx.Response:
        s = self.session
        if s is None:
            return await self._send(method, f"/kv/{key_path(key)}", headers=headers or {}, **kw)
        try:
            return await self._send(method, f"/kv/{key_path(key)}",
                                    headers={**(headers or {}), **s.headers(key)}, **kw)
        except DynamoError as e:
            s.saw_error(key, e)
            raise

    async def put(self, key: str, value: Union[bytes, str], *, w: Optional[int] = None,
                  content_type: Optional[str] = None, strict: Optional[bool] = None) -> dict:
        data = value.encode() if isinstance(value, str) else value
        headers = {"content-type": content_type} if content_type else {}
        out = (await self._send_kv("PUT", key, headers, content=data,
                                   params=_params(w=w, strict=strict))).json()
        if self.session is not None:
            self.session.saw(key, out.get("version"))
        return out

    async def get(self, key: str, *, r: Optional[int] = None,
                  strict: Optional[bool] = None) -> Item:
        item = _item(key, await self._send_kv("GET", key, params=_params(r=r, strict=strict)))
        if self.session is not None:
            self.session.saw(key, item.version)
        return item

    async def delete(self, key: str, *, w: Optional[int] = None) -> dict:
        out = (await self._send_kv("DELETE", key, params=_params(w=w))).json()
        if self.session is not None:
            self.session.saw(key, out.get("version"))
        return out

    async def cluster(self) -> dict:
        return (await self._send("GET", "/cluster")).json()

    async def node(self) -> dict:
        return (await self._send("GET", "/node")).json()
