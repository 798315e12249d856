-- pipewise schema, version 1. Columns mirror pipewise_core::schema (a test checks it).
-- Ids are the sources' stable external ids, so re-imports upsert instead of duplicating.
-- Timestamps are TEXT in UTC ISO 8601 ('YYYY-MM-DDTHH:MM:SSZ'), dates 'YYYY-MM-DD':
-- text order is time order, so as-of filters are plain comparisons on indexed columns.
-- Foreign keys are deferred to commit so that a file may refer to rows later in itself
-- (a rep's manager listed after the rep); importers check references first and report
-- them precisely, the constraint is the backstop.

CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    region TEXT
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    role TEXT,
    manager_id TEXT REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    team_id TEXT REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED,
    region TEXT,
    hire_date TEXT
);
CREATE INDEX users_team ON users(team_id) WHERE team_id IS NOT NULL;
CREATE INDEX users_manager ON users(manager_id) WHERE manager_id IS NOT NULL;

CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    family TEXT,
    list_price REAL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    industry TEXT,
    employees INTEGER,
    annual_revenue REAL,
    year_established INTEGER,
    location TEXT,
    parent_id TEXT REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
    owner_id TEXT REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    created_at TEXT
);
CREATE INDEX accounts_parent ON accounts(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX accounts_owner ON accounts(owner_id) WHERE owner_id IS NOT NULL;

CREATE TABLE contacts (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
    name TEXT,
    email TEXT,
    title TEXT,
    seniority TEXT,
    created_at TEXT
);
CREATE INDEX contacts_account ON contacts(account_id) WHERE account_id IS NOT NULL;

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    channel TEXT,
    started_at TEXT,
    ended_at TEXT,
    cost REAL
);

CREATE TABLE leads (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    source TEXT,
    campaign_id TEXT REFERENCES campaigns(id) DEFERRABLE INITIALLY DEFERRED,
    company TEXT,
    contact_name TEXT,
    email TEXT,
    title TEXT,
    inquiry TEXT,
    owner_id TEXT REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    first_response_at TEXT,
    status TEXT,
    converted_at TEXT,
    disqualified_at TEXT,
    account_id TEXT REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
    contact_id TEXT REFERENCES contacts(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX leads_created ON leads(created_at);
CREATE INDEX leads_owner ON leads(owner_id, created_at) WHERE owner_id IS NOT NULL;

CREATE TABLE opportunities (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    account_id TEXT REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
    owner_id TEXT NOT NULL REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    lead_id TEXT REFERENCES leads(id) DEFERRABLE INITIALLY DEFERRED,
    amount REAL,
    stage TEXT NOT NULL,
    forecast_category TEXT,
    probability REAL,
    created_at TEXT,
    close_date TEXT,
    closed_at TEXT,
    loss_reason TEXT,
    lead_source TEXT,
    type TEXT,
    -- Derived, never imported: 'won', 'lost' or 'open'.
    outcome TEXT GENERATED ALWAYS AS (
        CASE stage WHEN 'closed_won' THEN 'won' WHEN 'closed_lost' THEN 'lost' ELSE 'open' END
    ) VIRTUAL
);
-- A rep's book over time; an account's deals. (Time filters on all deals scan
-- the table: as-of reads go through opportunity_history, which is indexed by time.)
CREATE INDEX opportunities_owner ON opportunities(owner_id, created_at);
CREATE INDEX opportunities_account ON opportunities(account_id) WHERE account_id IS NOT NULL;

CREATE TABLE opportunity_products (
    opportunity_id TEXT NOT NULL REFERENCES opportunities(id) DEFERRABLE INITIALLY DEFERRED,
    product_id TEXT NOT NULL REFERENCES products(id) DEFERRABLE INITIALLY DEFERRED,
    quantity REAL,
    unit_price REAL,
    amount REAL,
    PRIMARY KEY (opportunity_id, product_id)
) WITHOUT ROWID;
CREATE INDEX opportunity_products_product ON opportunity_products(product_id);

-- One row per change of a tracked field. The value of a field as of t is the
-- `value` of its latest row with changed_at <= t; before its first row, that
-- row's `old_value` when known; with no rows at all, the opportunity's current value.
CREATE TABLE opportunity_history (
    opportunity_id TEXT NOT NULL REFERENCES opportunities(id) DEFERRABLE INITIALLY DEFERRED,
    field TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    value TEXT,
    old_value TEXT,
    PRIMARY KEY (opportunity_id, field, changed_at)
) WITHOUT ROWID;
CREATE INDEX opportunity_history_changed ON opportunity_history(changed_at);

CREATE TABLE activities (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    direction TEXT,
    occurred_at TEXT NOT NULL,
    duration_s INTEGER,
    outcome TEXT,
    subject TEXT,
    template_id TEXT,
    sequence_id TEXT,
    sequence_step INTEGER,
    user_id TEXT REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    lead_id TEXT REFERENCES leads(id) DEFERRABLE INITIALLY DEFERRED,
    opportunity_id TEXT REFERENCES opportunities(id) DEFERRABLE INITIALLY DEFERRED,
    contact_id TEXT REFERENCES contacts(id) DEFERRABLE INITIALLY DEFERRED,
    account_id TEXT REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX activities_occurred ON activities(occurred_at);
CREATE INDEX activities_opportunity ON activities(opportunity_id, occurred_at) WHERE opportunity_id IS NOT NULL;
CREATE INDEX activities_lead ON activities(lead_id, occurred_at) WHERE lead_id IS NOT NULL;
CREATE INDEX activities_user ON activities(user_id, occurred_at) WHERE user_id IS NOT NULL;
CREATE INDEX activities_contact ON activities(contact_id, occurred_at) WHERE contact_id IS NOT NULL;
CREATE INDEX activities_account ON activities(account_id, occurred_at) WHERE account_id IS NOT NULL;

CREATE TABLE conversations (
    id TEXT PRIMARY KEY NOT NULL,
    started_at TEXT,
    duration_s INTEGER,
    title TEXT,
    activity_id TEXT REFERENCES activities(id) DEFERRABLE INITIALLY DEFERRED,
    opportunity_id TEXT REFERENCES opportunities(id) DEFERRABLE INITIALLY DEFERRED,
    lead_id TEXT REFERENCES leads(id) DEFERRABLE INITIALLY DEFERRED,
    user_id TEXT REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    source_file TEXT
);
CREATE INDEX conversations_opportunity ON conversations(opportunity_id, started_at) WHERE opportunity_id IS NOT NULL;
CREATE INDEX conversations_lead ON conversations(lead_id, started_at) WHERE lead_id IS NOT NULL;
CREATE INDEX conversations_user ON conversations(user_id, started_at) WHERE user_id IS NOT NULL;

CREATE TABLE conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) DEFERRABLE INITIALLY DEFERRED,
    seq INTEGER NOT NULL,
    speaker TEXT,
    speaker_role TEXT,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    text TEXT,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;

CREATE TABLE campaign_touches (
    id TEXT PRIMARY KEY NOT NULL,
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) DEFERRABLE INITIALLY DEFERRED,
    lead_id TEXT REFERENCES leads(id) DEFERRABLE INITIALLY DEFERRED,
    contact_id TEXT REFERENCES contacts(id) DEFERRABLE INITIALLY DEFERRED,
    touched_at TEXT NOT NULL,
    type TEXT
);
CREATE INDEX campaign_touches_lead ON campaign_touches(lead_id, touched_at) WHERE lead_id IS NOT NULL;
CREATE INDEX campaign_touches_contact ON campaign_touches(contact_id, touched_at) WHERE contact_id IS NOT NULL;

CREATE TABLE usage_events (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED,
    occurred_at TEXT NOT NULL,
    event TEXT NOT NULL,
    product_id TEXT REFERENCES products(id) DEFERRABLE INITIALLY DEFERRED,
    quantity REAL
);
CREATE INDEX usage_events_account ON usage_events(account_id, occurred_at);

-- Audit log of committed imports (not part of the imported content).
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    sources TEXT NOT NULL,
    report TEXT NOT NULL
);
