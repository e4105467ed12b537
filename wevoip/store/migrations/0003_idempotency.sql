-- Creating API requests may carry an Idempotency-Key: the first response is kept for a day
-- and a retry with the same key and body gets it again instead of a second object.
create table idempotency_keys (
    token_id        bigint not null references api_tokens (id) on delete cascade,
    key             text not null check (length(key) between 1 and 255),
    request_sha256  bytea not null,
    status          integer not null,
    response        jsonb,
    created_at      timestamptz not null default now(),
    primary key (token_id, key)
);

create index idempotency_keys_age on idempotency_keys (created_at);
