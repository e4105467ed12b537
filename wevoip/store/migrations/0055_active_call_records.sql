-- A call in progress carries what its record needs, so that a node killed mid-call leaves
-- rows from which its next start (or, once its heartbeat is stale, another node) writes the
-- call's CDR: who called whom (as dialled and as E.164), the subscriber, the DID, the first
-- gateway, when it was answered, and when the node last said it was alive (`last_seen_at`,
-- written at admission, at the answer and by every heartbeat). Billing's reservation for
-- the same call is found by its call key (isp_id, node, call_id).

alter table active_calls
    add column subscriber_id  bigint,
    add column did_id         bigint,
    add column gateway_id     bigint,
    add column caller_dialled text not null default '' check (length(caller_dialled) <= 64),
    add column caller_e164    e164,
    add column callee_dialled text not null default '' check (length(callee_dialled) <= 64),
    add column callee_e164    e164,
    add column answered_at    timestamptz,
    add column last_seen_at   timestamptz not null default now();

create index active_calls_node_seen on active_calls (node, last_seen_at);

-- Admission with the record's facts, still one statement from the node: `admit_call`
-- (0075, resolved when this runs, so the order of the files does not matter) locks, counts
-- and inserts, then the admitted row gets the facts.
create function admit_recorded_call(p_isp bigint, p_customer bigint, p_tenant bigint, p_carrier bigint,
                                    p_call_id text, p_node text, p_direction text,
                                    p_subscriber bigint, p_did bigint, p_gateway bigint,
                                    p_caller_dialled text, p_caller_e164 text,
                                    p_callee_dialled text, p_callee_e164 text)
returns table (active_id bigint, started_at timestamptz, refusal text, limit_value integer)
language plpgsql as $$
declare
    v record;
begin
    select * into v from admit_call(p_isp, p_customer, p_tenant, p_carrier, p_call_id, p_node, p_direction);
    if v.active_id is not null then
        update active_calls set subscriber_id = p_subscriber, did_id = p_did, gateway_id = p_gateway,
                                caller_dialled = left(coalesce(p_caller_dialled, ''), 64),
                                caller_e164 = p_caller_e164,
                                callee_dialled = left(coalesce(p_callee_dialled, ''), 64),
                                callee_e164 = p_callee_e164
            where id = v.active_id;
    end if;
    return query select v.active_id, v.started_at, v.refusal, v.limit_value;
end $$;
