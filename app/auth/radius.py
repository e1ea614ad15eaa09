"""RADIUS: the app sends ``user`` and ``password``; the service asks one or more RADIUS servers
(PAP, with the shared secret and a Message-Authenticator), each with a timeout and retries.
Access-Accept logs in; Access-Reject answers BADLOGIN."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ..schema import ConfigError, between, setting
from . import LoginKit
from .password import PasswordLogin, Unavailable, in_time, requires

# The attributes we send and read (RFC 2865, RFC 3579); pyrad needs them named in a dictionary.
DICTIONARY = """
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE Class 25 octets
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Message-Authenticator 80 octets
"""


@dataclass(frozen=True)
class RadiusSettings:
    """RADIUS login (``[auth.radius]``), with ``auth.method = "radius"``."""

    servers: list[str] = setting(["127.0.0.1:1812"], "RADIUS servers as host:port, asked in this order.")
    secret: str = setting("", "The shared secret this service has with them. Secret.", secret=True)
    timeout: float = setting(
        3.0,
        "Seconds to wait for each answer (a login waits at most timeout x "
        "(retries + 1) x servers in all, name resolution included).",
        check=between(0.2, 30),
    )
    retries: int = setting(1, "Times a server is asked again after a timeout before the next one.", check=between(0, 5))
    nas_identifier: str = setting("messenger-backend", "NAS-Identifier sent with each request.")
    address_prefix: str = setting("", "Prefix for the mesibo address (the user id follows it).")
    require_message_authenticator: bool = setting(
        False,
        "Refuse answers without a Message-Authenticator (BlastRADIUS, CVE-2024-3596); turn it on when "
        "your servers sign their answers (FreeRADIUS 3.2.5 and later). Requests always carry one.",
    )

    def worst_seconds(self) -> float:
        return self.timeout * (self.retries + 1) * len(self.servers)

    def validate(self) -> None:
        if not self.secret:
            raise ConfigError("auth.radius.secret", "is required by auth.method = radius")
        for server in self.servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError("auth.radius.servers", f"each server is host:port, got {server!r}")


class RadiusLogin(PasswordLogin):
    section = "auth.radius"
    Settings = RadiusSettings
    options: RadiusSettings

    def __init__(self, options: RadiusSettings, kit: LoginKit):
        dictionary = requires("pyrad.dictionary", "radius", "radius")
        super().__init__(options, kit)
        self.dictionary = dictionary.Dictionary(io.StringIO(DICTIONARY))

    def authenticate(self, user: str, password: str) -> tuple[str, str] | None:
        """Each server in turn, each asked ``retries + 1`` times for ``timeout`` seconds; in all -
        name resolution included - within that sum and what is left of the request's deadline."""
        ask = lambda held: self._ask_servers(user, password, held)  # noqa: E731
        return in_time(self.options.worst_seconds(), "the RADIUS servers", ask, lambda client: client._CloseSocket())

    def _ask_servers(self, user: str, password: str, clients: list[Any]) -> tuple[str, str] | None:
        import pyrad.packet
        from pyrad.client import Client, Timeout

        o = self.options
        for server in o.servers:
            host, _, port = server.rpartition(":")
            client = Client(
                server=host,
                authport=int(port),
                secret=o.secret.encode(),
                dict=self.dictionary,
                retries=o.retries + 1,
                timeout=o.timeout,
                enforce_ma=o.require_message_authenticator,
            )
            clients.append(client)
            request = client.CreateAuthPacket(
                code=pyrad.packet.AccessRequest, User_Name=user, NAS_Identifier=o.nas_identifier
            )
            request["User-Password"] = request.PwCrypt(password)
            request.add_message_authenticator()
            try:
                reply = client.SendPacket(request)
            except (Timeout, OSError):
                continue  # the next server
            except Exception as exc:  # an answer that does not verify (secret, Message-Authenticator)
                raise Unavailable(
                    f"RADIUS server {server} answered something that does not verify ({type(exc).__name__})"
                ) from None
            finally:
                client._CloseSocket()  # pyrad keeps its UDP socket open otherwise
            if reply.code == pyrad.packet.AccessAccept:
                return o.address_prefix + user, ""
            return None
        raise Unavailable(f"no RADIUS server answered ({', '.join(o.servers)})")
