-- Issue 12 point 13: a SIP user under a distributed password guess is locked to the
-- addresses it registers from. One row per locked subscriber (every node reads it: a lock
-- holds on the whole platform and survives restarts), and the addresses each subscriber
-- registered from lately, which stay admitted while it is locked.

create table sip_user_locks (
    subscriber_id   bigint primary key references subscribers (id) on delete cascade,
    isp_id          bigint not null,
    tenant_id       bigint not null,
    username        text not null,
    domain          text not null,
    locked_at       timestamptz not null,
    locked_until    timestamptz not null,
    failures        integer not null check (failures >= 0),
    reason          text not null default ''
);

create index sip_user_locks_isp on sip_user_locks (isp_id, locked_until);

create table sip_known_sources (
    subscriber_id   bigint not null references subscribers (id) on delete cascade,
    address         inet not null,
    last_seen_at    timestamptz not null,
    primary key (subscriber_id, address)
);

-- Every node forgets addresses unused for known_source_days once a minute.
create index sip_known_sources_seen on sip_known_sources (last_seen_at);
