"""Event contracts: one frozen class per (type, version), the envelope, and the registry between them."""

from pathlib import Path

from portal_shared.events.contracts import *  # noqa: F403
from portal_shared.events.contracts import __all__ as _contracts
from portal_shared.events.envelope import Envelope, UnknownEventError, decode, encode

# One JSON sample per contract event type, `<type>.json`; tests parse every one of them.
SAMPLES_DIR = Path(__file__).parent / "samples"

__all__ = [*_contracts, "SAMPLES_DIR", "Envelope", "UnknownEventError", "decode", "encode"]
