-- Each registered model's scores on its held-out test window, with the
-- outcomes: what fairness by group (and any later audit of the evaluation)
-- is read from. Entity ids only (deals or leads), no personal data.
CREATE TABLE model_holdout (
    model_id    INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    entity_id   TEXT NOT NULL,
    as_of       TEXT NOT NULL,
    probability REAL NOT NULL,
    outcome     REAL NOT NULL
);
CREATE INDEX model_holdout_model ON model_holdout(model_id);
