"""Event contracts: one frozen class per (type, version), the envelope, and the registry between them."""

from portal_shared.events.contracts import *  # noqa: F403
from portal_shared.events.contracts import __all__ as _contracts
from portal_shared.events.envelope import Envelope, UnknownEventError, decode, encode

__all__ = [*_contracts, "Envelope", "UnknownEventError", "decode", "encode"]
