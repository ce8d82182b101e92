"""SQL of the users projection (table `users`): the address and name each email goes to."""

from __future__ import annotations

from datetime import datetime

from portal_shared.consumer import Statement

# A consumer statement (portal_shared.consumer.Statement): it runs with the event's inbox claim ($1–$3, the
# CTE `claimed`) and does nothing for a duplicate. An older event never overwrites a newer one's name or
# address.
_UPSERT_USER = """
INSERT INTO users (user_id, email, name, event_at)
SELECT $4::text, $5::text, $6::text, $7::timestamptz WHERE EXISTS (SELECT 1 FROM claimed)
ON CONFLICT (user_id) DO UPDATE
SET email = EXCLUDED.email, name = EXCLUDED.name, event_at = EXCLUDED.event_at, updated_at = now()
WHERE users.event_at <= EXCLUDED.event_at
"""

def upsert_user(*, user_id: str, email: str, name: str, event_at: datetime) -> Statement:
    return Statement(_UPSERT_USER, (user_id, email, name, event_at))
