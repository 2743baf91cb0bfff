"""Who may do what: Shared Access Signature verification and claims, as Service Bus does it.

This module owns *authorization* and nothing about the wire: it turns a CBS put-token
(audience + token string) into a ``Grant`` or a refusal, and answers "does this
connection's set of grants give right R on path P?". ``amqp.py`` keeps the grants per
connection and asks at the points where Service Bus checks: link attach and management
operations. No proton, no sockets.

How Service Bus does it (see README.md for the sources):

* A SAS token is ``SharedAccessSignature sr=<url-encoded resource>&sig=<signature>&se=<expiry>
  &skn=<key name>`` (fields in any order). The signature is base64(HMAC-SHA256(key,
  ``<url-encoded resource> + "\\n" + <expiry>``)), url-encoded in the token. The string to
  sign is the resource *as it appears in the token*, so any client's percent-encoding
  verifies.
* The rule named by ``skn`` must be configured on the entity the resource names or on one
  of its parents (the namespace). A token is valid for every resource under its ``sr``;
  put for an audience outside ``sr``, it is refused.
* The claim check happens when a link is attached (and per management operation): a
  valid token whose rule lacks the right is accepted by CBS, then the link is refused
  with ``amqp:unauthorized-access``.
* Any other token (a JWT from a ``TokenCredential``) is accepted with every right unless
  ``token_rights`` names it: then it has exactly the rights listed there (a stand-in
  for Azure RBAC role assignments, which SAS rules cannot express).

Tokens and keys are credentials: nothing here logs or formats them into messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from .broker import BrokerError, entity_path
from .config import (
    RIGHTS,
    AuthorizationRule,
    ConfigError,
    EmulatorConfig,
    parse_rights,
)

__all__ = [
    "NAMESPACE_SCOPE",
    "ROOT_KEY_NAME",
    "SAS_PREFIX",
    "Authorizer",
    "Grant",
    "TokenRejectedError",
    "UnauthorizedError",
    "covers",
    "normalize_token_rights",
]

ROOT_KEY_NAME = "RootManageSharedAccessKey"
SAS_PREFIX = "SharedAccessSignature "
#: The ``token_rights`` entity key that stands for the whole namespace.
NAMESPACE_SCOPE = "*"
_ALL_RIGHTS = frozenset(RIGHTS)


class TokenRejectedError(Exception):
    """CBS refuses a token: the put-token reply carries ``status_code`` and this text."""

    def __init__(self, description: str, *, reason: str, status_code: int = 401) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason  # "InvalidSignature", "ExpiredToken", ... (for inspection)
        self.status_code = status_code


class UnauthorizedError(BrokerError):
    """The connection's tokens lack a claim (Send, Listen) for what it attempts."""

    condition = "amqp:unauthorized-access"
    status_code = 401


@dataclass(frozen=True)
class Grant:
    """What one accepted put-token allows on its connection.

    ``audience`` is the lower-cased entity path the token was put for (``""`` = the
    namespace); a grant only ever covers paths under it. ``scopes`` pairs a lower-cased
    path prefix with the rights valid under it. ``expires_at`` is epoch seconds (SAS
    ``se``), ``None`` for tokens the emulator cannot read (JWTs).
    """

    audience: str
    scopes: tuple[tuple[str, frozenset[str]], ...]
    expires_at: float | None
    #: "SAS rule 'name'" or "bearer token" (never the token itself), for logs.
    identity: str

    def rights_for(self, path: str, now: float) -> frozenset[str]:
        if self.expires_at is not None and self.expires_at <= now:
            return frozenset()
        if not covers(self.audience, path):
            return frozenset()
        granted: set[str] = set()
        for scope, rights in self.scopes:
            if covers(scope, path):
                granted |= rights
        return frozenset(granted)


def covers(scope: str, path: str) -> bool:
    """True when ``path`` is ``scope`` or below it (segment-wise; ``""`` covers all)."""
    return scope == "" or path == scope or path.startswith(scope + "/")


def _resource(uri: str) -> str:
    """``sb://Host:5672/Queue/`` -> ``host:5672/queue``: scheme dropped, lower case."""
    if "://" in uri:
        uri = uri.split("://", 1)[1]
    return uri.strip().rstrip("/").lower()


def normalize_token_rights(
    token_rights: Mapping[str, Mapping[str, Iterable[str]]] | None,
    entity_names: Iterable[str] = (),
) -> dict[str, tuple[tuple[str, frozenset[str]], ...]]:
    """Validate ``token_rights`` (``{token: {entity path or "*": rights}}``).

    Entity paths are lower-cased; ``"*"`` means the whole namespace. When
    ``entity_names`` is given, the first segment of each path must be one of them.
    """
    known = {name.lower() for name in entity_names}
    result: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
    for token, by_entity in (token_rights or {}).items():
        if not isinstance(token, str) or not token:
            raise ConfigError("token_rights keys must be non-empty token strings")
        if token.startswith(SAS_PREFIX):
            raise ConfigError(
                "token_rights is for bearer tokens; SAS tokens get their rule's rights"
            )
        if not isinstance(by_entity, Mapping):
            raise ConfigError("token_rights values must map entity paths to rights")
        scopes: list[tuple[str, frozenset[str]]] = []
        for entity, rights in by_entity.items():
            if not isinstance(entity, str) or not entity:
                raise ConfigError(f"token_rights entity must be a path or '*', not {entity!r}")
            scope = "" if entity == NAMESPACE_SCOPE else entity_path(entity).lower()
            if scope and known and scope.split("/", 1)[0] not in known:
                raise ConfigError(f"token_rights names an unknown entity: {entity!r}")
            scopes.append((scope, parse_rights(rights, f"token_rights for {entity!r}")))
        result[token] = tuple(scopes)
    return result


class Authorizer:
    """Rules of one namespace; verifies tokens and checks claims. Immutable, thread-safe."""

    def __init__(
        self,
        config: EmulatorConfig,
        root: AuthorizationRule,
        *,
        token_rights: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if any(r.key_name.lower() == root.key_name.lower() for r in config.authorization_rules):
            raise ConfigError(
                f"the namespace rule {root.key_name!r} is built in; do not define it again"
            )
        self.root = root
        self.namespace_rules: tuple[AuthorizationRule, ...] = (
            root,
            *config.authorization_rules,
        )
        if len(self.namespace_rules) > 12:
            raise ConfigError("the namespace has more than 12 authorization rules (root included)")
        self.entity_rules: dict[str, tuple[AuthorizationRule, ...]] = {
            name.lower(): tuple(entity.authorization_rules)
            for name, entity in [*config.queues.items(), *config.topics.items()]
        }
        self.token_rights = normalize_token_rights(token_rights, self.entity_rules)
        #: Token expiry is judged on the wall clock: the SDK signs (``se``) and refreshes
        #: tokens by the wall clock, whatever the broker's (advanceable) clock says.
        self.wall = wall

    # -- configuration look-ups ----------------------------------------------------

    def rule(self, key_name: str, entity: str | None = None) -> AuthorizationRule:
        """The rule named ``key_name`` on the namespace (``entity=None``) or on a queue or
        topic; ``KeyError`` if there is none."""
        if entity is None:
            rules, where = self.namespace_rules, "the namespace"
        else:
            rules = self.entity_rules.get(entity.lower(), ())
            where = f"entity {entity!r}"
            if entity.lower() not in self.entity_rules:
                raise KeyError(f"no queue or topic named {entity!r}")
        for rule in rules:
            if rule.key_name == key_name:
                return rule
        names = [r.key_name for r in rules]
        raise KeyError(f"no authorization rule {key_name!r} on {where} (rules: {names})")

    # -- CBS put-token -------------------------------------------------------------

    def put_token(self, audience: str, token: str) -> Grant:
        """Verify ``token`` for ``audience``; the grant it gives, or ``TokenRejectedError``."""
        path = entity_path(audience).lower()
        if token.startswith(SAS_PREFIX):
            return self._verify_sas(audience, path, token[len(SAS_PREFIX) :])
        scopes = self.token_rights.get(token)
        if scopes is None:
            scopes = (("", _ALL_RIGHTS),)  # RBAC is Azure's; by default a token may do all
        return Grant(path, scopes, None, "bearer token")

    def _verify_sas(self, audience: str, path: str, body: str) -> Grant:
        fields: dict[str, str] = {}
        for part in body.strip().split("&"):
            name, eq, value = part.partition("=")
            if not eq or name in fields:
                raise _malformed()
            fields[name] = value
        if not {"sr", "sig", "se", "skn"} <= set(fields):
            raise _malformed()
        raw_resource, raw_expiry = fields["sr"], fields["se"]
        key_name = unquote(fields["skn"])
        resource = _resource(unquote(raw_resource))
        if not raw_expiry.isascii() or not raw_expiry.isdigit():
            raise _malformed()
        target = _resource(audience)
        if not covers(resource, target):
            raise TokenRejectedError(
                _with_tracking(
                    "InvalidAudience: The authorization header contains a token with a wrong "
                    "audience."
                ),
                reason="InvalidAudience",
            )
        # The rule must sit on the entity the resource names, or on the namespace.
        _, _, resource_path = resource.partition("/")
        entity = resource_path.split("/", 1)[0]
        candidates = [
            rule
            for rule in (*self.entity_rules.get(entity, ()), *self.namespace_rules)
            if rule.key_name == key_name
        ]
        signed = f"{raw_resource}\n{raw_expiry}".encode()
        presented = unquote(fields["sig"]).encode("utf-8", "surrogateescape")
        rule = next(
            (
                r
                for r in candidates
                if hmac.compare_digest(
                    base64.b64encode(
                        hmac.new(r.key.encode("utf-8"), signed, hashlib.sha256).digest()
                    ),
                    presented,
                )
            ),
            None,
        )
        if rule is None:  # unknown key name and wrong signature look the same from outside
            raise TokenRejectedError(
                _with_tracking("InvalidSignature: The token has an invalid signature."),
                reason="InvalidSignature",
            )
        expiry = int(raw_expiry)
        if expiry <= self.wall():
            stamp = dt.datetime.fromtimestamp(expiry, dt.timezone.utc)
            raise TokenRejectedError(
                _with_tracking(
                    "ExpiredToken: The token is expired. Expiration time: "
                    f"'{stamp:%Y-%m-%d %H:%M:%S}Z'"
                ),
                reason="ExpiredToken",
            )
        return Grant(
            path, (("", rule.effective_rights),), float(expiry), f"SAS rule {rule.key_name!r}"
        )

    # -- claims --------------------------------------------------------------------

    def rights(self, grants: Iterable[Grant], path: str) -> frozenset[str]:
        """Every right the grants give on ``path`` (an entity path, any case)."""
        now = self.wall()
        target = path.lower()
        granted: set[str] = set()
        for grant in grants:
            granted |= grant.rights_for(target, now)
        return frozenset(granted)

    def require(
        self, grants: Iterable[Grant], path: str, right: str | None, *, namespace: str
    ) -> None:
        """Raise ``UnauthorizedError`` unless the grants give ``right`` on ``path``
        (``right=None``: any right at all, for management links)."""
        held = self.rights(grants, path)
        if right is None and held:
            return
        if right is not None and right in held:
            return
        target = path.lower()
        if right is None:
            raise UnauthorizedError(
                _with_tracking(
                    "Unauthorized access. No token covers this resource. "
                    f"Resource: 'sb://{namespace}/{target}'.",
                    tracker=f"{namespace}:{target}",
                )
            )
        raise UnauthorizedError(
            _with_tracking(
                f"Unauthorized access. '{right}' claim(s) are required to perform this "
                f"operation. Resource: 'sb://{namespace}/{target}'.",
                tracker=f"{namespace}:{target}",
            )
        )


def _malformed() -> TokenRejectedError:
    # The emulator's wording: Service Bus's own text for a malformed SAS is not documented.
    return TokenRejectedError(
        _with_tracking(
            "MalformedToken: The SharedAccessSignature must carry sr, sig, se (an integer) "
            "and skn exactly once."
        ),
        reason="MalformedToken",
    )


def _with_tracking(text: str, *, tracker: str = "NoSystemTracker") -> str:
    """Service Bus appends a tracking id, a system tracker and a timestamp to its errors."""
    now = dt.datetime.now(dt.timezone.utc)
    stamp = f"{now:%Y-%m-%dT%H:%M:%S}"
    return f"{text} TrackingId:{uuid.uuid4()}, SystemTracker:{tracker}, Timestamp:{stamp}"
