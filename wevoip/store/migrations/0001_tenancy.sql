-- The tenancy model: platform -> ISPs -> customers -> tenants (PBXs) -> subscribers.
-- Every ISP-owned table carries isp_id, and its foreign keys to other ISP-owned tables
-- include isp_id, so a row can never point at another ISP's object: the database itself
-- keeps the ISPs apart, not only the queries.

create domain e164 as text
    check (value ~ '^\+[1-9][0-9]{1,14}$');

create domain dns_name as text
    check (length(value) <= 253
           and value ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$');

create domain amount as numeric(20, 6);

create table platform_admins (
    id              bigint generated always as identity primary key,
    username        text not null unique check (username ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    password_hash   text not null,
    created_at      timestamptz not null default now()
);

create table isps (
    id              bigint generated always as identity primary key,
    name            text not null check (length(name) between 1 and 200),
    namespace       dns_name not null,
    currency        char(3) not null check (currency ~ '^[A-Z]{3}$'),
    address_line1   text not null default '',
    address_line2   text not null default '',
    city            text not null default '',
    region          text not null default '',
    postal_code     text not null default '',
    country         char(2) check (country ~ '^[A-Z]{2}$'),
    contact_name    text not null default '',
    contact_email   text not null default '',
    contact_phone   e164,
    brand_title     text not null default '',
    brand_primary   text not null default '#1f6feb' check (brand_primary ~ '^#[0-9a-f]{6}$'),
    brand_accent    text not null default '#0b3d91' check (brand_accent ~ '^#[0-9a-f]{6}$'),
    brand_logo      bytea check (octet_length(brand_logo) <= 524288),
    brand_logo_type text check (brand_logo_type in ('image/png', 'image/jpeg', 'image/svg+xml')),
    smtp_sender     text not null default '',
    created_at      timestamptz not null default now(),
    constraint isps_namespace_key unique (namespace)
);

-- Platform tokens have no ISP; an ISP's tokens may be narrowed to one customer.
create table api_tokens (
    id              bigint generated always as identity primary key,
    isp_id          bigint references isps (id) on delete cascade,
    customer_id     bigint,
    name            text not null default '',
    token_sha256    bytea not null unique check (octet_length(token_sha256) = 32),
    scopes          text[] not null default '{}',
    created_at      timestamptz not null default now(),
    last_used_at    timestamptz,
    check (customer_id is null or isp_id is not null)
);

create table service_plans (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null references isps (id) on delete cascade,
    name            text not null check (length(name) between 1 and 100),
    created_at      timestamptz not null default now(),
    constraint service_plans_name_key unique (isp_id, name),
    unique (isp_id, id)
);

create table customers (
    id                    bigint generated always as identity primary key,
    isp_id                bigint not null references isps (id) on delete cascade,
    name                  text not null check (length(name) between 1 and 200),
    status                text not null default 'WAIT'
                              check (status in ('WAIT', 'ACTIVE', 'SUSPENDED')),
    service_plan_id       bigint,
    max_subscribers       integer not null default 10 check (max_subscribers >= 0),
    max_concurrent_calls  integer not null default 2 check (max_concurrent_calls >= 0),
    billing_mode          text not null default 'prepaid'
                              check (billing_mode in ('prepaid', 'postpaid')),
    balance_management    text not null default 'HARD'
                              check (balance_management in ('SOFT', 'HARD')),
    credit_limit          amount not null default 0 check (credit_limit >= 0),
    balance               amount not null default 0,
    first_name            text not null default '',
    last_name             text not null default '',
    email                 text not null default '',
    created_at            timestamptz not null default now(),
    unique (isp_id, id),
    foreign key (isp_id, service_plan_id) references service_plans (isp_id, id)
);

alter table api_tokens
    add foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade;

-- A namespace domain is <label>.<isp namespace> and usable at once; a verified domain is the
-- ISP's own and usable once its DNS TXT record has been seen.
create table domains (
    id                  bigint generated always as identity primary key,
    isp_id              bigint not null references isps (id) on delete cascade,
    name                dns_name not null,
    kind                text not null check (kind in ('namespace', 'verified')),
    verification_token  text not null default '',
    verified_at         timestamptz,
    created_at          timestamptz not null default now(),
    constraint domains_name_key unique (name),
    unique (isp_id, id)
);

create table tenants (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint not null,
    name            text not null check (length(name) between 1 and 200),
    domain_id       bigint not null,
    created_at      timestamptz not null default now(),
    unique (isp_id, id),
    unique (isp_id, customer_id, id),
    constraint tenants_domain_key unique (domain_id),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade,
    foreign key (isp_id, domain_id) references domains (isp_id, id)
);

create table subscribers (
    id                  bigint generated always as identity primary key,
    isp_id              bigint not null,
    customer_id         bigint not null,
    tenant_id           bigint not null,
    username            text not null check (username ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$'),
    display_name        text not null default '',
    extension           text check (extension ~ '^[0-9]{2,8}$'),
    e164                e164,
    is_pilot            boolean not null default false,
    ha1_md5             text not null check (ha1_md5 ~ '^[0-9a-f]{32}$'),
    ha1_sha256          text not null check (ha1_sha256 ~ '^[0-9a-f]{64}$'),
    web_username        text check (web_username ~ '^[^\s@]+@[^\s@]+$' or web_username ~ '^[A-Za-z0-9._-]{1,64}$'),
    web_password_hash   text,
    email               text not null default '',
    created_at          timestamptz not null default now(),
    unique (isp_id, id),
    unique (isp_id, tenant_id, id),
    constraint subscribers_username_key unique (tenant_id, username),
    constraint subscribers_extension_key unique (tenant_id, extension),
    constraint subscribers_e164_key unique (isp_id, e164),
    constraint subscribers_web_username_key unique (tenant_id, web_username),
    check (not is_pilot or e164 is not null),
    check ((web_username is null) = (web_password_hash is null)),
    foreign key (isp_id, customer_id, tenant_id)
        references tenants (isp_id, customer_id, id) on delete cascade
);

create unique index subscribers_one_pilot on subscribers (tenant_id) where is_pilot;

-- The plan's subscriber limit holds even when two inserts race: each locks its customer
-- row before counting, so the second waits for the first to commit and counts it.
create function subscribers_enforce_max() returns trigger language plpgsql as $$
declare
    allowed integer;
    present integer;
begin
    select max_subscribers into allowed from customers
        where id = new.customer_id and isp_id = new.isp_id for update;
    select count(*) into present from subscribers where customer_id = new.customer_id;
    if present >= allowed then
        raise exception 'max_subscribers of % reached', allowed
            using errcode = 'check_violation', constraint = 'customers_max_subscribers',
                  detail = allowed::text;
    end if;
    return new;
end $$;

create trigger subscribers_max before insert on subscribers
    for each row execute function subscribers_enforce_max();

create table carriers (
    id                    bigint generated always as identity primary key,
    isp_id                bigint not null references isps (id) on delete cascade,
    name                  text not null check (length(name) between 1 and 100),
    enabled               boolean not null default true,
    max_concurrent_calls  integer check (max_concurrent_calls >= 0),
    created_at            timestamptz not null default now(),
    constraint carriers_name_key unique (isp_id, name),
    unique (isp_id, id)
);

create table gateways (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    carrier_id      bigint not null,
    host            text not null check (length(host) between 1 and 253 and host !~ '\s'),
    port            integer not null default 5060 check (port between 1 and 65535),
    transport       text not null default 'udp' check (transport in ('udp', 'tcp', 'tls')),
    strip_digits    integer not null default 0 check (strip_digits between 0 and 15),
    prefix          text not null default '' check (prefix ~ '^\+?[0-9]{0,15}$'),
    ip_auth         boolean not null default true,
    source_ips      cidr[] not null default '{}',
    priority        integer not null default 10 check (priority between 0 and 1000),
    enabled         boolean not null default true,
    created_at      timestamptz not null default now(),
    unique (isp_id, id),
    constraint gateways_endpoint_key unique (carrier_id, host, port, transport),
    foreign key (isp_id, carrier_id) references carriers (isp_id, id) on delete cascade
);

-- A DID is in the ISP's inventory until it is allocated to a tenant; a tenant may route it
-- to one of its subscribers (or, later, to a feature).
create table dids (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null references isps (id) on delete cascade,
    e164            e164 not null,
    customer_id     bigint,
    tenant_id       bigint,
    subscriber_id   bigint,
    allocated_at    timestamptz,
    created_at      timestamptz not null default now(),
    constraint dids_e164_key unique (isp_id, e164),
    unique (isp_id, id),
    check ((tenant_id is null) = (customer_id is null)),
    check (subscriber_id is null or tenant_id is not null),
    foreign key (isp_id, customer_id, tenant_id)
        references tenants (isp_id, customer_id, id) on delete set null (customer_id, tenant_id),
    foreign key (isp_id, tenant_id, subscriber_id) references subscribers (isp_id, tenant_id, id)
        on delete set null (subscriber_id)
);

create index customers_isp on customers (isp_id);
create index tenants_customer on tenants (customer_id);
create index subscribers_customer on subscribers (customer_id);
create index gateways_carrier on gateways (carrier_id);
create index dids_tenant on dids (tenant_id);
