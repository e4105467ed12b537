-- Secrets every node of the platform shares, made once by whichever node asks first.
-- The SIP digest nonce key lives here so that a nonce one node issued verifies on another.

create table node_secrets (
    name        text primary key check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    value       bytea not null check (length(value) >= 16),
    created_at  timestamptz not null default now()
);
