#!/usr/bin/env python3
"""Lead-model quality: `pipewise model fit/predict` vs LightGBM with default
settings and a one-hot logistic regression, on the same rows and the same
split, in one run.

    pip install lightgbm pandas scikit-learn
    cargo build --release
    python3 benches/lead_model.py [--only maven|caravan|oj|default]

Data sets (public):

  maven    The Maven Analytics CRM export in ../shared/data/maven-crm: closed
           deals (Won vs Lost) joined with their account, product and sales
           team. Split by time: the earliest 75% of deals by engage_date train,
           the latest 25% test. close_date and close_value are left out (known
           only after the outcome; a lost deal's value is 0).
  caravan  The CoIL 2000 insurance direct-marketing set (5,822 customers, 85
           socio-demographic and product-ownership attributes; did the
           customer buy caravan insurance after the mailing: ~6% yes), the
           classic public lead-response benchmark. Read from the ISLP package
           (its wheel is fetched with `pip download --no-deps ISLP` into
           ~/.cache/pipewise-bench when absent). Split: stratified random 75/25
           with seed 42 (no dates in the set).
  oj       ISLP's orange-juice purchases (1,070 purchases of Citrus Hill or
           Minute Maid with prices, discounts, specials, the customer's brand
           loyalty and integer store codes): a purchase decision like a lead's
           conversion, with integer-coded categories. Positive: Minute Maid.
           Split by time: the earliest 75% by WeekofPurchase train.
  default  ISLP's credit-card default set (10,000 customers, 3.3% default;
           balance, income, student): a rare outcome driven by one smooth
           numeric, where a linear model is hard to beat, as on some lead
           tables. Stratified random 75/25 (seed 42).

pipewise gets the training CSV exactly as a user would pass it (it infers
column types itself); LightGBM gets the same columns as a DataFrame with text
columns as pandas categoricals, the columns pipewise found unusable
(identifiers, constants) dropped, and dates as day numbers plus month and weekday
(what pipewise derives from a date), and default parameters. Both are scored
by ROC-AUC on the same test rows, with a paired bootstrap (500 resamples of
the test rows) 95% interval of the difference from the better peer.
pipewise's fit time includes its 5-fold cross-validation (6 fits); LightGBM's
is one fit. The logistic regression (scikit-learn, L2, C=1) gets the same
columns: numbers median-imputed and standardised, categories one-hot (unseen
levels ignored). Columns pipewise reads as categories (e.g. integer store
codes) are categories for both peers too.
"""
import argparse, glob, json, os, subprocess, sys, tempfile, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAVEN = os.path.join(ROOT, "..", "shared", "data", "maven-crm")

try:
    import numpy as np
    import pandas as pd
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
except ImportError as e:
    sys.exit(f"{e}: run `pip install lightgbm pandas scikit-learn` first")


def pipewise_bin():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    pw = os.path.join(target, "release", "pipewise")
    if not os.path.exists(pw):
        sys.exit(f"{pw} not found: run `cargo build --release` first")
    return pw


def maven():
    p = pd.read_csv(os.path.join(MAVEN, "sales_pipeline.csv"))
    a = pd.read_csv(os.path.join(MAVEN, "accounts.csv"))
    pr = pd.read_csv(os.path.join(MAVEN, "products.csv"))
    t = pd.read_csv(os.path.join(MAVEN, "sales_teams.csv"))
    p = p[p.deal_stage.isin(["Won", "Lost"])].copy()
    # The export's alias (README): GTXPro is GTX Pro.
    p["product"] = p["product"].replace({"GTXPro": "GTX Pro"})
    df = p.merge(a, on="account", how="left").merge(pr, on="product", how="left").merge(t, on="sales_agent", how="left")
    df = df.drop(columns=["close_date", "close_value"])
    df = df.sort_values(["engage_date", "opportunity_id"]).reset_index(drop=True)
    cut = int(len(df) * 0.75)
    return "maven (won vs lost, time split)", df.iloc[:cut], df.iloc[cut:], "deal_stage", "Won", ["engage_date"]


def islp(name):
    cache = os.path.expanduser("~/.cache/pipewise-bench")
    os.makedirs(cache, exist_ok=True)
    wheels = glob.glob(os.path.join(cache, "ISLP-*.whl")) + glob.glob(os.path.join(cache, "islp-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache, "ISLP"], check=True)
        wheels = glob.glob(os.path.join(cache, "*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        with z.open(f"ISLP/data/{name}.csv") as f:
            df = pd.read_csv(f)
    return df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])


def stratified(df, target, seed=42):
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), dtype=bool)
    for v in df[target].unique():
        idx = np.flatnonzero(df[target].values == v)
        rng.shuffle(idx)
        test[idx[: len(idx) // 4]] = True
    return df[~test], df[test]


def caravan():
    tr, te = stratified(islp("Caravan"), "Purchase")
    return "caravan (CoIL 2000, stratified 75/25)", tr, te, "Purchase", "Yes", []


def oj():
    df = islp("OJ").sort_values("WeekofPurchase", kind="stable").reset_index(drop=True)
    cut = int(len(df) * 0.75)
    return "oj (purchases, time split)", df.iloc[:cut], df.iloc[cut:], "Purchase", "MM", []


def default():
    tr, te = stratified(islp("Default"), "default")
    return "default (credit, stratified 75/25)", tr, te, "default", "Yes", []


def lgb_frame(df, target, dates, drop, categories=None, as_category=()):
    x = df.drop(columns=[target] + drop).copy()
    for c in dates:
        d = pd.to_datetime(x[c])
        x[c + "_days"] = (d - pd.Timestamp("1970-01-01")).dt.days
        x[c + "_month"] = d.dt.month
        x[c + "_weekday"] = d.dt.day_of_week
        x = x.drop(columns=[c])
    cats = {}
    for c in x.columns:
        if c in as_category:
            x[c] = x[c].astype(str).where(x[c].notna())
        if x[c].dtype == object or pd.api.types.is_string_dtype(x[c]):
            levels = categories[c] if categories else sorted(x[c].dropna().unique())
            cats[c] = levels
            x[c] = pd.Categorical(x[c], categories=levels)
    return x, cats


def run_one(name, train, test, target, positive, dates, pw):
    with tempfile.TemporaryDirectory() as d:
        tr, te = os.path.join(d, "train.csv"), os.path.join(d, "test.csv")
        train.to_csv(tr, index=False)
        test.to_csv(te, index=False)
        model, scored = os.path.join(d, "model.json"), os.path.join(d, "scored.csv")
        t0 = time.perf_counter()
        fit = subprocess.run([pw, "model", "fit", "--data", tr, "--target", target, "--positive", positive,
                              "--out", model, "--json"], capture_output=True, text=True)
        if fit.returncode != 0:
            sys.exit(f"pipewise model fit failed: {fit.stderr}")
        t_fit = time.perf_counter() - t0
        rep = json.loads(fit.stdout)
        pred = subprocess.run([pw, "model", "predict", "--model", model, "--data", te, "--out", scored, "--json"],
                              capture_output=True, text=True)
        if pred.returncode != 0:
            sys.exit(f"pipewise model predict failed: {pred.stderr}")
        s = pd.read_csv(scored)
    y_te = (test[target] == positive).astype(int).values
    auc_pw = roc_auc_score(y_te, s["probability"].values)

    # The same columns: what pipewise found unusable (identifiers, constants) is dropped for both.
    drop = [c["name"] for c in rep["columns"] if c["role"] == "ignored"]
    as_cat = [c["name"] for c in rep["columns"] if "categorical" in c["role"]]
    xtr, cats = lgb_frame(train, target, dates, drop, as_category=as_cat)
    xte, _ = lgb_frame(test, target, dates, drop, cats, as_category=as_cat)
    t0 = time.perf_counter()
    clf = lgb.LGBMClassifier(verbose=-1).fit(xtr, (train[target] == positive).astype(int).values)
    t_lgb = time.perf_counter() - t0
    p_lgb = clf.predict_proba(xte)[:, 1]
    auc_lgb = roc_auc_score(y_te, p_lgb)
    # One-hot logistic regression on the same columns.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    cat_cols = list(cats)
    num_cols = [c for c in xtr.columns if c not in cats]
    as_obj = lambda x: x[cat_cols].astype(object).where(x[cat_cols].notna(), "(missing)") if cat_cols else x[cat_cols]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num_cols),
        ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols),
    ])
    lr = make_pipeline(pre, LogisticRegression(max_iter=5000))
    xtr_lr = pd.concat([xtr[num_cols], as_obj(xtr)], axis=1)
    xte_lr = pd.concat([xte[num_cols], as_obj(xte)], axis=1)
    t0 = time.perf_counter()
    lr.fit(xtr_lr, (train[target] == positive).astype(int).values)
    t_lr = time.perf_counter() - t0
    p_lr = lr.predict_proba(xte_lr)[:, 1]
    auc_lr = roc_auc_score(y_te, p_lr)
    # Paired bootstrap of the test rows against the better peer: is the
    # difference more than noise?
    p_peer, peer = (p_lgb, "LightGBM") if auc_lgb >= auc_lr else (p_lr, "logistic regression")
    rng = np.random.default_rng(7)
    p_pw = s["probability"].values
    diffs = []
    for _ in range(500):
        i = rng.integers(0, len(y_te), len(y_te))
        if y_te[i].min() == y_te[i].max():
            continue
        diffs.append(roc_auc_score(y_te[i], p_pw[i]) - roc_auc_score(y_te[i], p_peer[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    folds = rep["report"]["validation"]["fold_auc"]
    return {
        "data": name,
        "train_rows": len(train),
        "test_rows": len(test),
        "test_positive_rate": float(y_te.mean()),
        "pipewise_auc": auc_pw,
        "pipewise_cv_auc": rep["report"]["validation"]["metrics"]["roc_auc"],
        "pipewise_fold_auc_range": [min(folds), max(folds)],
        "lightgbm_auc": auc_lgb,
        "logistic_auc": auc_lr,
        "better_peer": peer,
        "difference": auc_pw - max(auc_lgb, auc_lr),
        "difference_95ci": [float(lo), float(hi)],
        "logistic_fit_seconds": t_lr,
        "pipewise_fit_seconds_incl_cv": t_fit,
        "lightgbm_fit_seconds": t_lgb,
        "pipewise_top_drivers": [d["column"] for d in rep["report"]["drivers"][:5]],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["maven", "caravan", "oj", "default"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pw = pipewise_bin()
    results = []
    for f in (maven, caravan, oj, default):
        if args.only and f.__name__ != args.only:
            continue
        results.append(run_one(*f(), pw))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'data':<36} {'train':>6} {'test':>6} {'pipewise':>9} {'LightGBM':>9} {'logistic':>9} {'vs better peer, 95% CI':>26} {'fit s: pw / lgb / lr':>22}")
    for r in results:
        ci = f"{r['difference']:+.3f} [{r['difference_95ci'][0]:+.3f}, {r['difference_95ci'][1]:+.3f}]"
        fits = f"{r['pipewise_fit_seconds_incl_cv']:.1f} / {r['lightgbm_fit_seconds']:.2f} / {r['logistic_fit_seconds']:.2f}"
        print(f"{r['data']:<36} {r['train_rows']:>6} {r['test_rows']:>6} {r['pipewise_auc']:>9.3f} {r['lightgbm_auc']:>9.3f} {r['logistic_auc']:>9.3f} {ci:>26} {fits:>22}")
    for r in results:
        lo, hi = r["pipewise_fold_auc_range"]
        print(f"  {r['data']}: pipewise cross-validated AUC on train {r['pipewise_cv_auc']:.3f} (folds {lo:.3f}..{hi:.3f}); top drivers {', '.join(r['pipewise_top_drivers'])}")


if __name__ == "__main__":
    main()
