-- What billing reads to decide a call, under the customer's lock, in one statement whose
-- plans PostgreSQL keeps per connection (a PL/pgSQL function's are prepared once; the same
-- joins sent as plain SQL were planned again on every call, most of their time).
--
-- `did_charges`: what a DID costs its customer, its own fees where set, else its customer's
-- plan's (`wevoip/store/pricing.py` reads it too). `call_account` locks the customer's row
-- first, in a statement of its own, so the next one (a fresh snapshot, read committed)
-- counts every hold whose transaction held the lock before; then returns the row, the
-- calling subscriber's, what the customer's calls in progress hold, the free minutes used
-- this period (when the plan has any) and the DID's charges.

create function did_charges(p_isp bigint, p_did bigint)
returns table (did_id bigint, e164 text, customer_id bigint, tenant_id bigint, subscriber_id bigint,
               setup_fee numeric, monthly_fee numeric, per_minute numeric, e911 boolean, fax boolean)
language sql stable as $$
    select d.id, d.e164::text, d.customer_id, d.tenant_id, d.subscriber_id,
           coalesce(b.setup_fee, p.did_setup_fee, 0)::numeric,
           coalesce(b.monthly_fee, p.did_monthly_fee, 0)::numeric,
           coalesce(b.per_minute, p.did_per_minute, 0)::numeric,
           coalesce(b.e911, false), coalesce(b.fax, false)
    from dids d left join did_billing b on b.did_id = d.id
    left join customers c on c.id = d.customer_id and c.isp_id = d.isp_id
    left join service_plans p on p.id = c.service_plan_id and p.isp_id = c.isp_id
    where d.isp_id = p_isp and d.id = p_did
$$;

create function call_account(p_isp bigint, p_customer bigint, p_subscriber bigint, p_did bigint)
returns table (customer customers, subscriber subscribers, held_amount numeric, held_free bigint,
               free_used bigint, did_id bigint, did_e164 text, did_customer_id bigint, did_tenant_id bigint,
               did_subscriber_id bigint, did_setup_fee numeric, did_monthly_fee numeric, did_per_minute numeric,
               did_e911 boolean, did_fax boolean)
language plpgsql as $$
#variable_conflict use_column
begin
    perform 1 from customers c where c.isp_id = p_isp and c.id = p_customer for update;
    return query
        select c, s, h.amount, h.free,
               case when p.free_minutes > 0 then
                   (select coalesce(sum(r.free_minutes), 0) from cdrs r
                    where r.isp_id = c.isp_id and r.customer_id = c.id
                    and (c.period_start is null or r.started_at >= c.period_start))
               else 0::bigint end,
               d.did_id, d.e164, d.customer_id, d.tenant_id, d.subscriber_id, d.setup_fee, d.monthly_fee,
               d.per_minute, d.e911, d.fax
        from customers c
        cross join lateral (select coalesce(sum(r.amount), 0)::numeric as amount,
                                   coalesce(sum(r.free_minutes), 0)::bigint as free
                            from call_reservations r where r.isp_id = c.isp_id and r.customer_id = c.id) h
        left join service_plans p on p.isp_id = c.isp_id and p.id = c.service_plan_id
        left join subscribers s on s.isp_id = c.isp_id and s.id = p_subscriber
        left join did_charges(p_isp, p_did) d on true
        where c.isp_id = p_isp and c.id = p_customer;
end $$;
