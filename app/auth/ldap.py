"""LDAP and Active Directory: the app sends ``user`` and ``password``; the service binds as the
user - found by a search with a service account, or named by a DN template - optionally checks a
group, and takes the mesibo address and display name from the user's attributes."""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from typing import Any

from ..cooperative import hang_up
from ..schema import ConfigError, between, setting
from . import LoginKit
from .password import PasswordLogin, Unavailable, in_time, requires


@dataclass(frozen=True)
class LdapSettings:
    """LDAP / Active Directory login (``[auth.ldap]``), with ``auth.method = "ldap"``."""

    url: str = setting("", "ldap://host:389 or ldaps://host:636 (Active Directory: your domain controller).")
    start_tls: bool = setting(False, "Upgrade an ldap:// connection with StartTLS.")
    ca_file: str = setting("", "CA bundle that signs the server's certificate (empty: the system's trusted CAs).")
    bind_dn: str = setting("", "Service account that searches for the user (empty: bind by user_dn_template).")
    bind_password: str = setting("", "That account's password. Secret.", secret=True)
    search_base: str = setting("", "Where users are searched (e.g. ou=people,dc=example,dc=org).")
    user_filter: str = setting(
        "(uid={user})", "Search filter; {user} is the escaped user id (Active Directory: (sAMAccountName={user}))."
    )
    user_dn_template: str = setting("", "Bind directly as this DN, e.g. uid={user},ou=people,dc=example,dc=org.")
    group_dn: str = setting("", "Only members of this group may log in (member or uniqueMember).")
    address_attribute: str = setting("uid", "Attribute that becomes the mesibo address (uid, mail, ...).")
    name_attribute: str = setting("cn", "Attribute that becomes the display name (cn, displayName).")
    address_prefix: str = setting("", "Prefix for that address (e.g. 'corp:').")
    timeout: float = setting(
        5.0,
        "Seconds a login may wait for the directory in all: name resolution, "
        "connecting, the binds and the searches together.",
        check=between(0.5, 60),
    )

    def worst_seconds(self) -> float:
        return self.timeout

    def validate(self) -> None:
        if not self.url.startswith(("ldap://", "ldaps://")):
            raise ConfigError("auth.ldap.url", f"must be ldap://... or ldaps://..., got {self.url!r}")
        if not self.user_dn_template and not (self.bind_dn and self.search_base):
            raise ConfigError("auth.ldap.bind_dn", "set bind_dn and search_base (search) or user_dn_template")
        if "{user}" not in (self.user_dn_template or self.user_filter):
            raise ConfigError("auth.ldap.user_filter", "must contain {user}")


def _close_socket(conn: Any) -> None:
    hang_up(getattr(conn, "socket", None))


def _discard(conn: Any) -> None:
    """Unbind, and close the socket ldap3 keeps after a connect that failed."""
    conn.unbind()
    _close_socket(conn)


class LdapLogin(PasswordLogin):
    UNKNOWN = "messenger-backend-no-such-user"  # the DN an unknown user's password is bound to (refused)
    section = "auth.ldap"
    Settings = LdapSettings
    options: LdapSettings

    def __init__(self, options: LdapSettings, kit: LoginKit):
        ldap3 = requires("ldap3", "ldap", "ldap")
        super().__init__(options, kit)
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED, ca_certs_file=options.ca_file or None, version=ssl.PROTOCOL_TLS_CLIENT
        )
        self.server = ldap3.Server(
            options.url,
            use_ssl=options.url.startswith("ldaps://"),
            tls=tls,
            connect_timeout=options.timeout,
            get_info=ldap3.NONE,
        )

    def _connection(self, user: str, password: str, opened: list[Any]) -> Any:
        """A bound connection, or None when the credentials are refused (``opened`` keeps it, so a
        login past its deadline can close it)."""
        import ldap3
        from ldap3.core.exceptions import LDAPException

        conn = ldap3.Connection(
            # ldap3 sets the receive timeout as a socket option of whole seconds
            self.server,
            user=user,
            password=password,
            receive_timeout=max(1, math.ceil(self.options.timeout)),
            auto_bind=ldap3.AUTO_BIND_NONE,
            raise_exceptions=False,
            read_only=True,
        )
        opened.append(conn)
        try:
            conn.open()
            if self.options.start_tls and not self.options.url.startswith("ldaps://") and not conn.start_tls():
                raise Unavailable(f"LDAP StartTLS failed: {(conn.result or {}).get('description')}")
            if conn.bind():
                return conn
        except LDAPException as exc:
            _discard(conn)
            raise Unavailable(f"LDAP server unreachable or not trusted ({type(exc).__name__})") from None
        except BaseException:
            _discard(conn)
            raise
        result = conn.result or {}
        _discard(conn)
        if result.get("description") in ("invalidCredentials", "inappropriateAuthentication", "unwillingToPerform"):
            return None  # wrong password, unknown DN, or a locked account (password policy)
        raise Unavailable(f"LDAP bind failed: {result.get('description')}")

    def authenticate(self, user: str, password: str) -> tuple[str, str] | None:
        """Within ``timeout`` in all (and what is left of the request's deadline): a directory that
        trickles its answers cannot hold the login longer."""
        ask = lambda held: self._authenticate(user, password, held)  # noqa: E731
        return in_time(self.options.worst_seconds(), "the LDAP server", ask, _close_socket)

    def _authenticate(self, user: str, password: str, opened: list[Any]) -> tuple[str, str] | None:
        from ldap3 import BASE, SUBTREE
        from ldap3.utils.conv import escape_filter_chars
        from ldap3.utils.dn import escape_rdn

        o = self.options
        attributes = [o.address_attribute, o.name_attribute]
        if o.user_dn_template:
            user_dn = o.user_dn_template.format(user=escape_rdn(user))
            base, scope, search = user_dn, BASE, "(objectClass=*)"
            finder = None
        else:
            finder = self._connection(o.bind_dn, o.bind_password, opened)
            if finder is None:
                raise Unavailable("the LDAP service account was refused (auth.ldap.bind_dn)")
            base, scope, search = o.search_base, SUBTREE, o.user_filter.format(user=escape_filter_chars(user))
        try:
            if finder is not None:
                finder.search(base, search, search_scope=scope, attributes=attributes, size_limit=2)
                entries = list(finder.entries)
                if len(entries) != 1:  # unknown user (or an ambiguous filter): the same answer, and the
                    # same work - a bind with the password, as for a known user - so that the time an
                    # answer takes does not tell whether the account exists
                    self._connection(f"cn={self.UNKNOWN},{o.search_base}", password, opened)
                    return None
                user_dn = entries[0].entry_dn
            conn = self._connection(user_dn, password, opened)
            if conn is None:
                return None
            try:
                if o.group_dn and not self._member(conn, user_dn):
                    return None
                conn.search(user_dn, "(objectClass=*)", search_scope=BASE, attributes=attributes)
                if not conn.entries:
                    return None
                entry = conn.entries[0]
                address = self._first(entry, o.address_attribute)
                return (o.address_prefix + address, self._first(entry, o.name_attribute)) if address else None
            finally:
                conn.unbind()
        finally:
            if finder is not None:
                finder.unbind()

    def _member(self, conn: Any, user_dn: str) -> bool:
        from ldap3 import BASE
        from ldap3.utils.conv import escape_filter_chars

        dn = escape_filter_chars(user_dn)
        conn.search(self.options.group_dn, f"(|(member={dn})(uniqueMember={dn}))", search_scope=BASE, attributes=[])
        return bool(conn.entries)

    @staticmethod
    def _first(entry: Any, attribute: str) -> str:
        values = entry[attribute].values if attribute in entry else []
        return str(values[0]) if values else ""
