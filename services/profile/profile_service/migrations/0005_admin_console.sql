-- The admin console's lists, paged by keyset (issue #15): each ORDER BY below has an index that gives
-- its rows in order, so a page costs its own rows, not the rows before it (10,000 clients, 100,000 users).

-- GET /api/admin/clients: ORDER BY lower(name), id.
CREATE INDEX clients_sorted ON clients (lower(name), id);

-- GET /api/admin/users: ORDER BY lower(name), lower(email) (the address is unique, so the order is total).
CREATE INDEX users_sorted ON users (lower(name), lower(email));
-- A client's users in the same order; two_factor_enabled rides along so a client's counts
-- (user_count, two_factor_count) come from the index alone.
CREATE INDEX users_client_sorted ON users (client_id, lower(name), lower(email)) INCLUDE (two_factor_enabled);

-- A user's audit filtered by type, newest first; with type = 'signed_in' it is also the last sign-in.
CREATE INDEX audit_log_user_type ON audit_log (user_id, type, at DESC, id DESC);
