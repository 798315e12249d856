#!/usr/bin/env python3
"""Tree-model speed: pipewise's gradient-boosted trees (models::hist) vs LightGBM
with default settings, on the same generated matrix, in one run.

    pip install lightgbm pandas scikit-learn
    cargo build --release
    python3 benches/model_speed.py [--rows 20000,50000] [--features 50]

For each size: a matrix of uniform features (seeded) whose outcome depends on
four of them, written as CSV. pipewise: `model fit --folds 2` (the reported
time is the final fit alone, from the JSON report) and `model predict --top 0`
(the classifier's scoring of the prepared columns alone). LightGBM: `LGBMClassifier().fit` and
`predict_proba` on the same matrix. The issue's target is 1,000,000 rows;
pass `--rows 1000000` to run it (about a minute per learner, most of it
writing and reading the CSV).
"""
import argparse, json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import pandas as pd
    import lightgbm as lgb
except ImportError as e:
    sys.exit(f"{e}: run `pip install lightgbm pandas scikit-learn` first")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="20000,50000")
    ap.add_argument("--features", type=int, default=50)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    pw = os.path.join(target, "release", "pipewise")
    if not os.path.exists(pw):
        sys.exit(f"{pw} not found: run `cargo build --release` first")
    print(f"{'rows':>9} {'pipewise fit s':>15} {'LightGBM fit s':>15} {'pipewise rows/s scored':>23} {'LightGBM rows/s scored':>23}")
    for n in [int(x) for x in args.rows.split(",")]:
        rng = np.random.default_rng(42)
        x = rng.random((n, args.features))
        z = 3 * (x[:, 0] - 0.5) + 2 * x[:, 1] * x[:, 2] - 1 + (x[:, 3] > 0.7)
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
        cols = [f"f{j}" for j in range(args.features)]
        df = pd.DataFrame(x, columns=cols)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.csv")
            df.assign(y=y).to_csv(path, index=False, float_format="%.6f")
            fit = subprocess.run([pw, "model", "fit", "--data", path, "--target", "y", "--folds", "2",
                                  "--out", os.path.join(d, "m.json"), "--json"], capture_output=True, text=True)
            if fit.returncode != 0:
                sys.exit(fit.stderr)
            t_pw = json.loads(fit.stdout)["report"]["final_fit_seconds"]
            pred = subprocess.run([pw, "model", "predict", "--model", os.path.join(d, "m.json"), "--data", path,
                                   "--out", os.path.join(d, "s.csv"), "--top", "0", "--json"], capture_output=True, text=True)
            if pred.returncode != 0:
                sys.exit(pred.stderr)
            p_pw = json.loads(pred.stdout)["model_seconds"]
        xs = pd.DataFrame(np.round(x, 6), columns=cols)
        t0 = time.perf_counter()
        clf = lgb.LGBMClassifier(verbose=-1).fit(xs, y)
        t_lgb = time.perf_counter() - t0
        t0 = time.perf_counter()
        clf.predict_proba(xs)
        p_lgb = time.perf_counter() - t0
        print(f"{n:>9} {t_pw:>15.2f} {t_lgb:>15.2f} {n / p_pw:>23,.0f} {n / p_lgb:>23,.0f}", flush=True)


if __name__ == "__main__":
    main()
