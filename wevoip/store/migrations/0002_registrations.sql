-- Registrar bindings (RFC 3261 §10): one row per contact of a subscriber's address of
-- record. The registrar keeps an index of them in memory; this table makes them survive a
-- restart and lets several nodes share them.

create table registrations (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    tenant_id       bigint not null,
    subscriber_id   bigint not null,
    contact         text not null check (length(contact) between 1 and 1024),
    q               numeric(4, 3) not null default 1 check (q between 0 and 1),
    call_id         text not null check (length(call_id) between 1 and 256),
    cseq            bigint not null check (cseq >= 0),
    expires_at      timestamptz not null,
    source          text not null default '',
    transport       text not null check (transport in ('udp', 'tcp', 'tls', 'ws', 'wss')),
    instance_id     text not null default '',
    user_agent      text not null default '' check (length(user_agent) <= 256),
    node            text not null default '',
    updated_at      timestamptz not null default now(),
    constraint registrations_contact_key unique (isp_id, subscriber_id, contact),
    foreign key (isp_id, subscriber_id) references subscribers (isp_id, id) on delete cascade,
    foreign key (isp_id, tenant_id) references tenants (isp_id, id) on delete cascade
);

create index registrations_expiry on registrations (expires_at);
create index registrations_tenant on registrations (isp_id, tenant_id);
