-- Carrier gateways given by DNS name (issue 12 point 8). A gateway's port may now be left
-- out (null): RFC 3263 then finds its port through SRV, as it does its addresses; a port
-- given (every existing row has one) means A/AAAA only. Nulls count as equal in the
-- endpoint's uniqueness, so one name without a port is not added twice.
alter table gateways alter column port drop not null, alter column port drop default;
alter table gateways drop constraint gateways_endpoint_key;
alter table gateways add constraint gateways_endpoint_key unique nulls not distinct (carrier_id, host, port, transport);

-- What a gateway's name resolved to, kept apart from the gateway so that refreshing it on
-- the records' TTL does not touch the gateway row. A gateway with IP authentication and no
-- source_ips of its own trusts these addresses; a failed look-up keeps them and says why.
create table gateway_addresses (
    gateway_id      bigint primary key references gateways (id) on delete cascade,
    isp_id          bigint not null,
    addresses       cidr[] not null default '{}',
    resolved_at     timestamptz,            -- the last answer DNS gave
    next_at         timestamptz not null default now(),
    error           text                    -- why the last look-up failed; null when it did not
);
create index gateway_addresses_next on gateway_addresses (next_at);

-- Which addresses are trunks changes with these: the SIP stack's trunk cache and the
-- routing cache's sources forget then (not on every refresh that finds the same answer).
create function notify_gateway_addresses() returns trigger language plpgsql as $$
begin
    perform pg_notify('call_routing', 'sources');
    perform pg_notify('sip_gateways', '*');
    return null;
end $$;

create trigger gateway_addresses_changed after insert or delete on gateway_addresses
    for each row execute function notify_gateway_addresses();
create trigger gateway_addresses_moved after update of addresses on gateway_addresses
    for each row when (old.addresses is distinct from new.addresses)
    execute function notify_gateway_addresses();
