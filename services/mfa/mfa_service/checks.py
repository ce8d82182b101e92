"""The answer of one second-factor check (sign-in or re-authentication), whichever factor made it.

Each check also says how many recovery codes the account has left after a success, read in the
statement that accepted the factor: profile reports it at sign-in (the contract's
`recovery_codes_remaining`) and so needs no second call to mfa (issue #17 item 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    user_id: str | None = None  # whose factor passed (a passkey names its owner); None when refused
    recovery_codes_remaining: int | None = None  # after a success; None when refused

    @classmethod
    def refused(cls) -> Check:
        return cls(False)

    @classmethod
    def passed(cls, user_id: str, recovery_codes_remaining: int) -> Check:
        return cls(True, user_id, recovery_codes_remaining)

    def answer(self) -> dict[str, Any]:
        """The fields every internal verification answer carries (docs/internal-api.md)."""
        return {"ok": self.ok, "recovery_codes_remaining": self.recovery_codes_remaining}
