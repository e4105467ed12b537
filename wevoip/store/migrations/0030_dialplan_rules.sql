-- An ISP's dialplan: ordered rules in WeHostVoIP's form (match, subs, replacement with _CC
-- and _AC). `position` is unique per ISP but checked at commit, so a reorder or an insert
-- in the middle can shift many rows in one transaction.
create table dialplan_rules (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null references isps (id) on delete cascade,
    position        integer not null check (position >= 0),
    match           text not null check (length(match) between 1 and 200),
    subs            text not null check (length(subs) between 1 and 200),
    replacement     text not null check (length(replacement) between 1 and 200),
    description     text not null default '' check (length(description) <= 200),
    created_at      timestamptz not null default now(),
    unique (isp_id, id),
    constraint dialplan_rules_position_key unique (isp_id, position) deferrable initially deferred
);

-- Where a subscriber dials from: its country code (_CC) and area code (_AC), digits only,
-- for the rules that complete a local or national number.
alter table subscribers
    add column country_code text not null default '' check (country_code ~ '^([1-9][0-9]{0,2})?$'),
    add column area_code text not null default '' check (area_code ~ '^[0-9]{0,6}$');
