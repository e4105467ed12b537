-- The call set-up path in fewer round trips.
--
-- 1. Admission in one statement: `admit_call` locks the customer, then the tenant, then
--    the carrier (the order the Python version kept, so admissions cannot deadlock),
--    counts what is active under each, and inserts the call; a refusal comes back as a
--    code rather than an error, so the caller's transaction decides what to do.
-- 2. Nodes keep ISP rows and plan pricing (plan, area rates, free zones) in memory; every
--    write to those tables, whoever makes it, publishes the key on `pricing_rules` when
--    its transaction commits, so every node forgets it then.

create function admit_call(p_isp bigint, p_customer bigint, p_tenant bigint, p_carrier bigint,
                           p_call_id text, p_node text, p_direction text)
returns table (active_id bigint, started_at timestamptz, refusal text, limit_value integer)
language plpgsql as $$
#variable_conflict use_column
declare
    v_status text;
    v_limit integer;
    v_enabled boolean;
    v_id bigint;
    v_started timestamptz;
begin
    select c.status, c.max_concurrent_calls into v_status, v_limit
        from customers c where c.isp_id = p_isp and c.id = p_customer for update;
    if not found then
        return query select null::bigint, null::timestamptz, 'customer missing', null::integer; return;
    end if;
    if v_status <> 'ACTIVE' then
        return query select null::bigint, null::timestamptz, 'customer ' || v_status, null::integer; return;
    end if;
    if v_limit is not null and (select count(*) from active_calls a where a.customer_id = p_customer) >= v_limit then
        return query select null::bigint, null::timestamptz, 'customer limit', v_limit; return;
    end if;
    select t.max_concurrent_calls into v_limit from tenants t
        where t.isp_id = p_isp and t.id = p_tenant and t.customer_id = p_customer for update;
    if not found then
        return query select null::bigint, null::timestamptz, 'tenant missing', null::integer; return;
    end if;
    if v_limit is not null and (select count(*) from active_calls a where a.tenant_id = p_tenant) >= v_limit then
        return query select null::bigint, null::timestamptz, 'tenant limit', v_limit; return;
    end if;
    if p_carrier is not null then
        select k.enabled, k.max_concurrent_calls into v_enabled, v_limit from carriers k
            where k.isp_id = p_isp and k.id = p_carrier for update;
        if not found then
            return query select null::bigint, null::timestamptz, 'carrier missing', null::integer; return;
        end if;
        if not v_enabled then
            return query select null::bigint, null::timestamptz, 'carrier disabled', null::integer; return;
        end if;
        if v_limit is not null
                and (select count(*) from active_calls a where a.carrier_id = p_carrier) >= v_limit then
            return query select null::bigint, null::timestamptz, 'carrier limit', v_limit; return;
        end if;
    end if;
    insert into active_calls (isp_id, customer_id, tenant_id, carrier_id, call_id, node, direction)
        values (p_isp, p_customer, p_tenant, p_carrier, p_call_id, p_node, p_direction)
        returning id, started_at into v_id, v_started;
    return query select v_id, v_started, null::text, null::integer;
end $$;

create function notify_pricing_rules() returns trigger language plpgsql as $$
declare
    r record;
begin
    if TG_OP = 'DELETE' then r := old; else r := new; end if;
    if TG_TABLE_NAME = 'isps' then
        perform pg_notify('pricing_rules', 'isp:' || r.id);
    elsif TG_TABLE_NAME = 'service_plans' then
        perform pg_notify('pricing_rules', 'plan:' || r.id);
    else
        if TG_OP <> 'INSERT' then
            perform pg_notify('pricing_rules', 'plan:' || old.plan_id);
        end if;
        if TG_OP <> 'DELETE' then
            perform pg_notify('pricing_rules', 'plan:' || new.plan_id);
        end if;
    end if;
    return null;
end $$;

create trigger isps_pricing_rules after update or delete on isps
    for each row execute function notify_pricing_rules();
create trigger service_plans_pricing_rules after update or delete on service_plans
    for each row execute function notify_pricing_rules();
create trigger plan_area_rates_pricing_rules after insert or update or delete on plan_area_rates
    for each row execute function notify_pricing_rules();
create trigger plan_free_zones_pricing_rules after insert or update or delete on plan_free_zones
    for each row execute function notify_pricing_rules();
