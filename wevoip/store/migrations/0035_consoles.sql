-- The consoles: who logs into the web pages (ISP admins, customer admins; platform admins
-- and subscribers already have their rows), their server-side sessions, the failures that
-- rate-limit logins, the ISP signups in progress, the audit trail, a subscriber's own
-- settings (forwarding, voicemail), and the custom hostname an ISP's consoles answer on.

alter table isps add column hostname dns_name;
alter table isps add constraint isps_hostname_key unique (hostname);

create table isp_admins (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null references isps (id) on delete cascade,
    email           text not null check (length(email) <= 254 and email ~ '^[^\s@]+@[^\s@]+$'),
    full_name       text not null check (length(full_name) between 1 and 200),
    password_hash   text not null,
    created_at      timestamptz not null default now(),
    constraint isp_admins_email_key unique (isp_id, email),
    unique (isp_id, id)
);

create table customer_admins (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint not null,
    email           text not null check (length(email) <= 254 and email ~ '^[^\s@]+@[^\s@]+$'),
    full_name       text not null default '' check (length(full_name) <= 200),
    password_hash   text not null,
    created_at      timestamptz not null default now(),
    constraint customer_admins_email_key unique (isp_id, email),
    unique (isp_id, id),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade
);

-- A session names exactly the account it belongs to, so deleting the account ends it.
-- Only a SHA-256 of the cookie's value is kept, like API tokens.
create table web_sessions (
    id_sha256           bytea primary key check (octet_length(id_sha256) = 32),
    role                text not null check (role in ('platform', 'isp', 'customer', 'subscriber')),
    isp_id              bigint references isps (id) on delete cascade,
    platform_admin_id   bigint references platform_admins (id) on delete cascade,
    isp_admin_id        bigint references isp_admins (id) on delete cascade,
    customer_id         bigint,
    customer_admin_id   bigint references customer_admins (id) on delete cascade,
    subscriber_id       bigint,
    impersonator_id     bigint references isp_admins (id) on delete cascade,
    csrf_token          text not null check (length(csrf_token) >= 32),
    created_at          timestamptz not null default now(),
    last_seen_at        timestamptz not null default now(),
    expires_at          timestamptz not null,
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade,
    foreign key (isp_id, subscriber_id) references subscribers (isp_id, id) on delete cascade,
    check ((role = 'platform') = (platform_admin_id is not null and isp_id is null)),
    check ((role = 'isp') = (isp_admin_id is not null)),
    check (role <> 'customer' or (customer_id is not null
                                  and (customer_admin_id is not null or impersonator_id is not null))),
    check ((role = 'subscriber') = (subscriber_id is not null))
);

create index web_sessions_expiry on web_sessions (expires_at);

-- Failed logins, by source address and by account, counted over a sliding window.
create table login_failures (
    key     text not null check (length(key) <= 400),
    at      timestamptz not null default now()
);

create index login_failures_key on login_failures (key, at);

-- An ISP signup: the e-mail is confirmed by a link (only the token's SHA-256 is kept), then
-- each step adds to `data` until the validate step creates the ISP and its first admin.
create table signups (
    id              bigint generated always as identity primary key,
    email           text not null check (length(email) <= 254 and email ~ '^[^\s@]+@[^\s@]+$'),
    token_sha256    bytea not null unique check (octet_length(token_sha256) = 32),
    data            jsonb not null default '{}',
    logo            bytea check (octet_length(logo) <= 524288),
    logo_type       text check (logo_type in ('image/png', 'image/jpeg', 'image/svg+xml')),
    created_at      timestamptz not null default now(),
    expires_at      timestamptz not null,
    confirmed_at    timestamptz,
    isp_id          bigint references isps (id) on delete set null
);

-- What people did in an ISP's consoles that others must be able to see later, first of
-- all an ISP admin logging in as one of the ISP's customers.
create table audit_trail (
    id          bigint generated always as identity primary key,
    isp_id      bigint not null references isps (id) on delete cascade,
    actor       text not null check (length(actor) between 1 and 300),
    action      text not null check (action ~ '^[a-z][a-z_.]{0,62}$'),
    target      text not null default '' check (length(target) <= 300),
    source      text not null default '' check (length(source) <= 100),
    at          timestamptz not null default now()
);

create index audit_trail_isp on audit_trail (isp_id, id);

-- A subscriber's own settings from the self-care pages. Forwarding targets are an E.164
-- number or an extension of the same tenant; the voicemail PIN is kept as argon2id.
create domain forward_target as text
    check (value ~ '^(\+[1-9][0-9]{1,14}|[0-9]{2,8})$');

create table subscriber_settings (
    isp_id              bigint not null,
    subscriber_id       bigint not null,
    forward_always      forward_target,
    forward_busy        forward_target,
    forward_no_answer   forward_target,
    no_answer_seconds   integer not null default 20 check (no_answer_seconds between 5 and 120),
    voicemail_enabled   boolean not null default true,
    voicemail_pin_hash  text,
    voicemail_email     text not null default '' check (length(voicemail_email) <= 254),
    voicemail_attach    boolean not null default true,
    updated_at          timestamptz not null default now(),
    primary key (isp_id, subscriber_id),
    foreign key (isp_id, subscriber_id) references subscribers (isp_id, id) on delete cascade
);
