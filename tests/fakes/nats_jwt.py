"""NATS in operator (JWT) mode, for tests: an operator, an account with JetStream, users of it
as `.creds` files, and the server configuration that trusts them — what `nsc` would write.

    trust = Operator.create()
    config.write_text(trust.server_config())          # `operator:`, `resolver: MEMORY`, preload
    trust.write_creds(folder / "ci.creds", "ci")      # a user JWT + its nkey seed

Each JWT is `base64url(header).base64url(claims).base64url(ed25519 signature)`, signed by the
nkey one level up (nats-io/jwt v2: the operator signs itself and the account, the account its
users); `jti` is the base32 SHA-512/256 of the standard claims, as nats-io/jwt computes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nkeys

UNLIMITED = -1
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def new_key(prefix: int) -> nkeys.KeyPair:
    """A fresh nkey of one kind (`nkeys.PREFIX_BYTE_OPERATOR`, `_ACCOUNT`, `_USER`)."""
    return nkeys.from_seed(bytearray(nkeys.encode_seed(os.urandom(32), prefix)))


def public(key: nkeys.KeyPair) -> str:
    return key.public_key.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def mint(*, subject: str, name: str, nats: dict, signer: nkeys.KeyPair) -> str:
    """A JWT for `subject`, issued and signed by `signer`."""
    standard = {"iat": int(time.time()), "iss": public(signer), "name": name, "sub": subject}
    claims = {"jti": base64.b32encode(hashlib.new("sha512_256", _compact(standard)).digest()).decode().rstrip("=")}
    claims |= standard | {"nats": {**nats, "version": 2}}
    signed = f"{_b64(_compact(_HEADER))}.{_b64(_compact(claims))}"
    return f"{signed}.{_b64(signer.sign(signed.encode()))}"


def creds_text(user_jwt: str, seed: bytes) -> str:
    """A `.creds` file as `nsc generate creds` writes it."""
    return (
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


@dataclass
class Operator:
    """An operator, the account it vouches for (JetStream enabled, no limits) and the system
    account a JetStream server in operator mode needs for its own subscriptions."""

    key: nkeys.KeyPair
    account: nkeys.KeyPair
    system: nkeys.KeyPair

    @classmethod
    def create(cls) -> Operator:
        account = nkeys.PREFIX_BYTE_ACCOUNT
        return cls(new_key(nkeys.PREFIX_BYTE_OPERATOR), account=new_key(account), system=new_key(account))

    def operator_jwt(self) -> str:
        return mint(subject=public(self.key), name="test-operator", nats={"type": "operator"}, signer=self.key)

    def account_jwt(self) -> str:
        limits = {
            **dict.fromkeys(("subs", "data", "payload", "imports", "exports", "conn", "leaf"), UNLIMITED),
            "wildcards": True,
            **dict.fromkeys(("mem_storage", "disk_storage", "streams", "consumer"), UNLIMITED),  # JetStream on
        }
        return mint(
            subject=public(self.account), name="mesh", nats={"type": "account", "limits": limits}, signer=self.key
        )

    def server_config(self) -> str:
        """The nats-server configuration that trusts this operator and knows its two accounts."""
        return (
            f'operator: "{self.operator_jwt()}"\n'
            "resolver: MEMORY\n"
            f"system_account: {public(self.system)}\n"
            "resolver_preload: {\n"
            f'  {public(self.account)}: "{self.account_jwt()}"\n'
            f'  {public(self.system)}: "{self._system_jwt()}"\n'
            "}\n"
        )

    def _system_jwt(self) -> str:
        return mint(subject=public(self.system), name="SYS", nats={"type": "account"}, signer=self.key)

    def write_creds(self, path: Path, name: str, *, account: nkeys.KeyPair | None = None) -> Path:
        """A user of the account (or of `account`, which the server may not know) as a .creds file."""
        issuer = account or self.account
        user = new_key(nkeys.PREFIX_BYTE_USER)
        jwt = mint(
            subject=public(user),
            name=name,
            nats={"type": "user", "pub": {}, "sub": {}, "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED},
            signer=issuer,
        )
        path.write_text(creds_text(jwt, bytes(user.seed)))
        path.chmod(0o600)
        return path
