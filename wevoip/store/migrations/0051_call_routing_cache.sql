-- What a call's routing reads on every call and an operator rarely changes is kept on each
-- node (wevoip/routing/cache.py): the ISP's gateways and carriers, who holds a number (DIDs
-- and subscribers' own numbers), a subscriber's extension and the number it shows. Every
-- write to those tables, whoever makes it, publishes the ISP's id on `call_routing` when
-- its transaction commits, so every node forgets that ISP's routing then; a change of
-- gateways or carriers also publishes `sources` (which addresses are trunks, across ISPs).
-- The carriers' cards that least-cost routing reads per call are kept by billing's
-- DeckIndexes, forgotten likewise through `decks:<isp>` on `pricing_rules`.

create function notify_call_routing() returns trigger language plpgsql as $$
declare
    r record;
begin
    if TG_OP = 'DELETE' then r := old; else r := new; end if;
    if TG_OP <> 'INSERT' then
        perform pg_notify('call_routing', old.isp_id::text);
    end if;
    if TG_OP <> 'DELETE' then
        perform pg_notify('call_routing', new.isp_id::text);
    end if;
    if TG_TABLE_NAME in ('gateways', 'carriers') then
        perform pg_notify('call_routing', 'sources');
    end if;
    if TG_TABLE_NAME in ('carriers', 'rate_decks') then
        perform pg_notify('pricing_rules', 'decks:' || r.isp_id);
    end if;
    return null;
end $$;

create trigger subscribers_call_routing after insert or update or delete on subscribers
    for each row execute function notify_call_routing();
create trigger dids_call_routing after insert or update or delete on dids
    for each row execute function notify_call_routing();
create trigger gateways_call_routing after insert or update or delete on gateways
    for each row execute function notify_call_routing();
create trigger carriers_call_routing after insert or update or delete on carriers
    for each row execute function notify_call_routing();
create trigger rate_decks_call_routing after insert or update or delete on rate_decks
    for each row execute function notify_call_routing();
