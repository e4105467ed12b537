-- The outbox: mail and webhook events written in the same transaction as the change that
-- causes them (a signup, a balance crossing its threshold, a call ending), so nothing is
-- announced that did not happen and nothing that happened goes unannounced. A dispatcher
-- on any node drains it; `dedupe_key` makes "once per crossing" a unique constraint.

create table outbox (
    id              bigint generated always as identity primary key,
    isp_id          bigint references isps (id) on delete cascade,
    kind            text not null check (kind in ('mail', 'webhook')),
    payload         jsonb not null,
    dedupe_key      text check (length(dedupe_key) between 1 and 200),
    created_at      timestamptz not null default now(),
    next_attempt_at timestamptz not null default now(),
    attempts        integer not null default 0 check (attempts >= 0),
    sent_at         timestamptz,
    last_error      text not null default ''
);

create unique index outbox_dedupe_key on outbox (coalesce(isp_id, 0), kind, dedupe_key)
    where dedupe_key is not null;
create index outbox_due on outbox (next_attempt_at) where sent_at is null;
create index outbox_isp on outbox (isp_id, id);
