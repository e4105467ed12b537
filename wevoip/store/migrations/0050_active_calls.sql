-- Calls in progress, one row per call, so concurrent-call limits hold across every node
-- sharing this database. A call is admitted in one transaction that locks the customer
-- row (and the tenant and carrier rows, in that order), counts, and inserts; a node that
-- dies leaves rows naming it, which its next start (or an operator) closes.

alter table tenants add column max_concurrent_calls integer check (max_concurrent_calls >= 0);

create table active_calls (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint not null,
    tenant_id       bigint not null,
    carrier_id      bigint,
    call_id         text not null check (length(call_id) between 1 and 256),
    node            text not null,
    direction       text not null check (direction in ('outbound', 'inbound', 'internal')),
    started_at      timestamptz not null default now(),
    constraint active_calls_call_key unique (node, call_id),
    foreign key (isp_id, customer_id, tenant_id)
        references tenants (isp_id, customer_id, id) on delete cascade,
    foreign key (isp_id, carrier_id) references carriers (isp_id, id) on delete cascade
);

create index active_calls_customer on active_calls (customer_id);
create index active_calls_tenant on active_calls (tenant_id);
create index active_calls_carrier on active_calls (carrier_id) where carrier_id is not null;
