-- An ISP's webhook: where its events go and the secret they are signed with (HMAC-SHA256,
-- so the secret itself is kept, not a hash of it).
create table webhooks (
    isp_id      bigint primary key references isps (id) on delete cascade,
    url         text not null check (length(url) between 10 and 2000 and url ~ '^https?://[^\s]+$'),
    secret      text not null check (length(secret) between 16 and 200),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
