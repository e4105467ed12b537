-- A DID allocated to a tenant is routed to one of its subscribers or to a feature: a named
-- plugin destination such as 'voicemail:100' or 'ivr:main'. A DID that leaves its tenant
-- (released, or the tenant deleted) loses its route.
alter table dids
    add column feature text check (feature ~ '^[a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9._@+-]{1,64})?$'),
    add constraint dids_one_destination check (subscriber_id is null or feature is null);

create function dids_clear_route() returns trigger language plpgsql as $$
begin
    if new.tenant_id is null then
        new.subscriber_id := null;
        new.feature := null;
    end if;
    return new;
end $$;

create trigger dids_route_follows_tenant before update on dids
    for each row execute function dids_clear_route();

create index dids_free on dids (isp_id, e164) where tenant_id is null;
