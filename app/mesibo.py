"""The client for mesibo's backend API: one session per worker, timeouts, safe retries, error mapping."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from .deadlines import deadline
from .forks import PerProcess
from .http import AnswerTooLargeError, SessionHolder, read_capped, total
from .metrics import NoMetrics
from .settings import MesiboSettings

logger = logging.getLogger("app.mesibo")

# mesibo error codes that mean the app itself (its token or id) is wrong, not the user.
APP_ERRORS = frozenset({"AUTHFAIL", "NOAPP", "BADAPP", "BADTOKEN", "INVALIDTOKEN", "APPDISABLED", "NOACCESS"})


class MesiboError(Exception):
    """mesibo did not mint a token. ``code`` is the contract's code: BADAPP or BADUSER."""

    def __init__(self, code: str, reason: str, *, upstream_error: str = ""):
        super().__init__(reason)
        self.code = code
        self.upstream_error = upstream_error


def _timed_out(exc: BaseException) -> bool:
    """Whether a failed call ran out of time anywhere down its chain: requests reports a read that
    timed out (or hit the call's deadline) as a ConnectionError wrapping urllib3's errors, which wrap
    the timeout - told apart from a peer that cannot be reached at all."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        found = pending.pop()
        if not isinstance(found, BaseException) or id(found) in seen:
            continue
        # urllib3's NewConnectionError is a ConnectTimeoutError by descent: a refused connection is not
        if isinstance(found, (Urllib3Timeout, TimeoutError, requests.Timeout)) and not isinstance(
            found, NewConnectionError
        ):
            return True
        seen.add(id(found))
        pending += [*found.args, getattr(found, "reason", None), found.__cause__, found.__context__]
    return False


def legacy_url(api_url: str) -> str:
    """``.../backend/`` -> ``.../api.php``; an URL that already names a .php file is kept."""
    url = api_url.rstrip("/")
    if url.endswith(".php"):
        return url
    if url.endswith("/backend"):
        url = url[: -len("/backend")]
    return url + "/api.php"


class MesiboClient:
    """Asks mesibo for user tokens.

    ``style`` is ``backend`` (JSON POST to the API URL, the default) or ``legacy``
    (GET ``api.php`` with the token in the query string, as the PHP original does).
    """

    def __init__(self, settings: MesiboSettings, metrics: NoMetrics | None = None):
        self.api_url = settings.api_url
        self._app_token = settings.app_token
        self.style = settings.api_style
        self.expiry_minutes = settings.token_expiry_minutes
        self.token_v2 = settings.token_v2
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        self.max_answer_bytes = settings.max_answer_bytes
        self._metrics = metrics or NoMetrics()
        self._sessions = SessionHolder(self.timeout, ca_file=settings.ca_file)
        self._templates: PerProcess[dict[str, tuple[requests.PreparedRequest, dict[str, str]]]] = PerProcess(dict)
        # app id -> (app token, API URL) of the apps configured apart (mesibo.apps)
        self.apps = {
            appid: (str(spec.get("app_token") or self._app_token), str(spec.get("api_url") or self.api_url))
            for appid, spec in settings.apps.items()
        }

    def __repr__(self) -> str:
        return f"MesiboClient(api_url={self.api_url!r}, style={self.style!r})"

    @property
    def configured(self) -> bool:
        return bool(self._app_token) or all(token for token, _ in self.apps.values()) and bool(self.apps)

    def target(self, appid: str = "") -> tuple[str, str]:
        """The app token and API URL that serve ``appid``: its own (mesibo.apps), else the default."""
        return self.apps.get(appid, (self._app_token, self.api_url))

    def session(self) -> requests.Session:
        """One session per worker process."""
        return self._sessions.get()

    def _call(self, op: str, body: dict[str, Any], legacy_params: dict[str, Any], appid: str = "") -> dict[str, Any]:
        app_token, url = self.target(appid)
        if not app_token:
            raise MesiboError("BADAPP", "no mesibo app token is configured")
        started = time.perf_counter()
        outcome = "ok"
        try:
            return self._exchange(op, body, legacy_params, app_token, url)
        except MesiboError:
            outcome = "error"
            raise
        finally:
            self._metrics.mesibo(op, time.perf_counter() - started, outcome)

    def _exchange(
        self, op: str, body: dict[str, Any], legacy_params: dict[str, Any], app_token: str, url: str
    ) -> dict[str, Any]:
        try:
            with deadline(total(self.timeout)):  # the whole call, however slowly mesibo answers
                if self.style == "legacy":
                    params = {"op": op, "token": app_token, **legacy_params}
                    # no redirects: the token is in the URL, and a redirect would take it to another host
                    response = self.session().get(
                        legacy_url(url), params=params, timeout=self.timeout, allow_redirects=False, stream=True
                    )
                    self._read_capped(response)
                else:
                    response = self._post_json({"op": op, "token": app_token, **body}, url)
        except (requests.Timeout, TimeoutError):
            raise MesiboError("BADAPP", "mesibo did not answer in time") from None
        except requests.RequestException as exc:
            if _timed_out(exc):  # requests reports a read that timed out mid-body as a ConnectionError
                raise MesiboError("BADAPP", "mesibo did not answer in time") from None
            # The exception text may hold the URL, and in legacy style the URL holds the token.
            raise MesiboError("BADAPP", f"cannot reach mesibo ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code in (401, 403, 404):
            raise MesiboError("BADAPP", f"mesibo answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise MesiboError(
                "BADAPP", f"mesibo answered something that is not JSON (HTTP {response.status_code})"
            ) from None
        if not isinstance(answer, dict):
            raise MesiboError("BADAPP", "mesibo answered JSON that is not an object")
        return answer

    def _post_json(self, payload: dict[str, Any], url: str) -> requests.Response:
        """POST JSON through the session's transport adapter (its retry policy and connection pool)
        without the rest of Session.request - environment lookups, cookies, hooks, redirects -
        which costs more than the network call itself on this hot path."""
        session = self.session()
        templates = self._templates.get()
        template, proxies = templates.get(url) or templates.setdefault(url, self._make_template(url))
        prepared = template.copy()
        prepared.prepare_body(data=json.dumps(payload, separators=(",", ":")).encode(), files=None)
        response = session.get_adapter(url).send(
            prepared, timeout=self.timeout, proxies=proxies, verify=self._sessions.verify, stream=True
        )
        self._read_capped(response)  # now, inside the caller's deadline
        return response

    def _read_capped(self, response: requests.Response) -> None:
        """Read the answer's body, at most ``max_answer_bytes`` of it: mesibo's answers are small."""
        try:
            read_capped(response, self.max_answer_bytes)
        except (Urllib3Timeout, TimeoutError):
            raise MesiboError("BADAPP", "mesibo did not answer in time") from None
        except (Urllib3Error, OSError) as exc:
            raise MesiboError("BADAPP", f"mesibo's answer broke off ({type(exc).__name__})") from None
        except AnswerTooLargeError:
            raise MesiboError("BADAPP", f"mesibo's answer is larger than {self.max_answer_bytes} bytes") from None

    def _make_template(self, url: str) -> tuple[requests.PreparedRequest, dict[str, str]]:
        headers = {**self.session().headers, "Content-Type": "application/json"}
        # HTTPS_PROXY / NO_PROXY still apply: read once for this URL.
        return (
            requests.Request("POST", url, headers=headers).prepare(),
            requests.utils.get_environ_proxies(url),
        )

    def _count_app_refusal(self, op: str, error: str) -> None:
        """mesibo answered that the app token or app is wrong: counted apart from failed calls (the
        call itself worked), for the alert that says so."""
        if error.upper() in APP_ERRORS:
            self._metrics.mesibo_refused_app(op)

    @property
    def legacy_url(self) -> str:
        return legacy_url(self.api_url)

    def add_user(self, address: str, appid: str, *, name: str = "", otp: str = "") -> str:
        """Create (or find) the user and mint a token for ``appid``; return the token.

        ``otp``: a code mesibo made (``create_code``) - mesibo then mints only with that code, and a
        refusal is the user's wrong code (BADCODE), not a user mesibo cannot create (BADUSER).
        """
        expiry_minutes = self.expiry_minutes
        token: dict[str, Any] = {"appid": appid, "expiry": expiry_minutes}
        if self.token_v2:
            token["v2"] = True  # mesibo's own sample: "use v2 token format"
        user: dict[str, Any] = {"address": address, "token": token}
        legacy: dict[str, Any] = {"addr": address, "appid": appid, "expiry": expiry_minutes}
        if self.token_v2:
            legacy["v2"] = 1
        if name:
            user["name"] = legacy["name"] = name
        if otp:
            user["otp"] = legacy["otp"] = otp
        answer = self._call("useradd", {"user": user}, legacy, appid)
        if answer.get("result") is not True and str(answer.get("result")).lower() != "true":
            error = str(answer.get("error") or answer.get("errmsg") or "unknown")
            self._count_app_refusal("useradd", error)
            code = "BADAPP" if error.upper() in APP_ERRORS else "BADCODE" if otp else "BADUSER"
            raise MesiboError(code, f"mesibo refused useradd: {error}", upstream_error=error)
        found = answer.get("user")
        minted: Any = found.get("token") if isinstance(found, dict) else None
        if isinstance(minted, dict):  # some API versions nest the token object
            minted = minted.get("token")
        if not isinstance(minted, str) or not minted:
            raise MesiboError("BADAPP", "mesibo's useradd answer has no user token")
        return minted

    def create_code(self, address: str, *, tries: int, expiry_seconds: int, reuse: bool, appid: str = "") -> str:
        """Ask mesibo to make a one-time code for ``address`` (it checks it at useradd); return it."""
        spec = {"address": address, "tries": tries, "expiry": expiry_seconds, "reuse": 1 if reuse else 0}
        legacy = {"addr": address, "tries": tries, "expiry": expiry_seconds, "reuse": spec["reuse"]}
        answer = self._call("otp", {"otp": spec}, legacy, appid)
        if answer.get("result") is not True and str(answer.get("result")).lower() != "true":
            error = str(answer.get("error") or answer.get("errmsg") or "unknown")
            self._count_app_refusal("otp", error)
            raise MesiboError("BADAPP", f"mesibo refused to make a code: {error}", upstream_error=error)
        code: Any = answer.get("otp")
        if isinstance(code, dict):  # an answer that nests it
            code = code.get("otp") or code.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        if not isinstance(code, str) or not code.strip():
            raise MesiboError("BADAPP", "mesibo's otp answer has no code")
        return code.strip()

    def delete_user(self, address: str, op: str = "userdel", appid: str = "") -> None:
        """Delete the user ``address`` at mesibo (and with it its tokens). MesiboError when mesibo
        is not reached (BADAPP) or refuses: the app token (BADAPP), the user (BADUSER)."""
        answer = self._call(op, {"user": {"address": address}}, {"addr": address}, appid)
        if answer.get("result") is not True and str(answer.get("result")).lower() != "true":
            error = str(answer.get("error") or answer.get("errmsg") or "unknown")
            self._count_app_refusal(op, error)
            code = "BADAPP" if error.upper() in APP_ERRORS else "BADUSER"
            raise MesiboError(code, f"mesibo refused {op}: {error}", upstream_error=error)

    def revoke(self, address: str, appid: str, op: str = "userset") -> bool:
        """Best effort: ask mesibo to remove the user's tokens for ``appid`` - ``userset`` with
        ``user.token.remove``, as mesibo's own PHP helper does it (by address: mesibo's API names users,
        not tokens). Never raises; True when mesibo said it did."""
        user = {"address": address, "token": {"remove": True, "appid": appid}}
        try:
            answer = self._call(op, {"user": user}, {"addr": address, "appid": appid, "remove": 1}, appid)
        except MesiboError as exc:
            logger.warning("token revoke failed: %s", exc)
            return False
        if answer.get("result") is not True and str(answer.get("result")).lower() != "true":
            error = str(answer.get("error") or answer.get("errmsg") or "unknown")
            self._count_app_refusal(op, error)
            logger.warning("token revoke refused by mesibo: %s", error)
            return False
        return True

    def check(self, appid: str = "") -> tuple[bool, str]:
        """A harmless call that tells whether mesibo accepts the app token of ``appid`` (default: the
        default app token) - for the ``check`` command."""
        try:
            answer = self._call("usersget", {"count": 1}, {"count": 1}, appid)
        except MesiboError as exc:
            return False, str(exc)
        if answer.get("result") is True:
            return True, "mesibo accepted the app token"
        error = str(answer.get("error") or "unknown")
        if error.upper() in APP_ERRORS:
            return False, f"app token rejected by mesibo ({error})"
        return False, f"mesibo answered an error: {error}"
