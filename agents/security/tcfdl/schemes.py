"""The transmission schemes a TCFDL task may use, by the names clients, agents and reports use.

* ``none``: the payload travels as it is (the paper's Fig. 6 baseline);
* ``hse``: hop-by-hop AES-128-GCM (`hse`), every proxy on the path decrypts and re-encrypts;
* ``eae-umbral`` / ``eae-p256``: end-to-end hybrid encryption (`eae`) with the key moved by
  proxy re-encryption, Umbral (secp256k1) or the paper's section 3.2 scheme on P-256.
"""

from __future__ import annotations

import re

from agents.security.errors import ErrorCode, ProtocolError

NONE = "none"
HSE = "hse"
EAE_UMBRAL = "eae-umbral"
EAE_P256 = "eae-p256"
ALL = (NONE, HSE, EAE_UMBRAL, EAE_P256)
_PRE = {EAE_UMBRAL: "umbral", EAE_P256: "p256-paper"}
_FUNCTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def check_function(name: str) -> str:
    """A function name is one NATS subject token: letters, digits, '_' and '-' (at most 128);
    ProtocolError MALFORMED otherwise."""
    if not _FUNCTION.match(name):
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"function name {name!r}: use 1-128 letters, digits, '_' or '-'")
    return name


def check(scheme: str) -> str:
    """`scheme` when it is one of `ALL`; ProtocolError MALFORMED naming them otherwise."""
    if scheme not in ALL:
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"unknown transmission scheme {scheme!r}; choose one of "
                            f"{', '.join(ALL)}")
    return scheme


def is_eae(scheme: str) -> bool:
    """True for the EAE schemes."""
    return scheme in _PRE


def pre_name(scheme: str) -> str:
    """The PRE scheme (agents.security.tcfdl.pre.scheme name) of an EAE scheme."""
    try:
        return _PRE[scheme]
    except KeyError:
        raise ProtocolError(ErrorCode.MALFORMED, f"{scheme!r} is not an EAE scheme") from None
