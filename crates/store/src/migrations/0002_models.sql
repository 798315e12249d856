-- pipewise schema, version 2: the model registry and the scores it produced.
-- Models are versioned per kind (win, slip, lead); exactly one version per kind is
-- active and scores with it. Old versions stay for audit. Not part of the imported
-- content (the content digest ignores these tables).

CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    -- The snapshots trained on and tested on (dates, inclusive).
    train_from TEXT,
    train_to TEXT,
    test_from TEXT,
    test_to TEXT,
    -- JSON: the feature names in model order; the metrics table; the fitted model.
    features TEXT NOT NULL,
    metrics TEXT NOT NULL,
    card TEXT NOT NULL,
    artifact TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, version)
);

CREATE TABLE scores (
    model_id INTEGER NOT NULL REFERENCES models(id),
    entity_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    probability REAL NOT NULL,
    -- JSON list of {feature, text, contribution}, strongest first.
    factors TEXT NOT NULL,
    PRIMARY KEY (model_id, entity_id, as_of)
) WITHOUT ROWID;
CREATE INDEX scores_entity ON scores(entity_id, as_of);
