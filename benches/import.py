#!/usr/bin/env python3
"""Import benchmark: `pipewise import` vs the sqlite3 shell's `.import`, side by side.

    python3 benches/import.py [--rows 1000000] [--runs 3]

Generates a canonical org (500 reps, 20,000 accounts, N opportunities with 10
columns) with benches/gen_opportunities.py, then times, on the same file and in
the same run:

  pipewise        `pipewise import csv opportunities.csv` into a database that
                  already holds the reps and accounts: parsing, validation of
                  every cell and reference, duplicate-id check, upsert on the
                  id, secondary indexes, one atomic transaction.
  pipewise, encrypted at rest
                  the same, with PIPEWISE_KEY set: the database is created
                  encrypted (SQLCipher 4: AES-256 per page, HMAC-SHA512).
  sqlite3 raw     `sqlite3 fresh.db ".import --csv opportunities.csv t"`: the
                  shell's raw import into a new table of TEXT columns with no
                  key, index, constraint or validation.
  sqlite3 schema  the shell's raw import into a scratch table, then
                  `INSERT ... SELECT` into pipewise's own schema (same key,
                  foreign keys and indexes, no validation): SQLite's own speed
                  on the work pipewise has to do.

Peak memory (max RSS of each child process) is reported for pipewise at N/10,
N and 2N rows to show it does not grow with the file. Median of --runs runs.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, stdin=None, env=None):
    """Runs cmd; returns (seconds, max RSS in MiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if stdin:
        p.stdin.write(stdin.encode())
        p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return dt, usage.ru_maxrss / 1024


def ensure_sqlite3():
    if shutil.which("sqlite3"):
        return
    print("installing the sqlite3 shell (Debian package sqlite3)...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "sqlite3"], check=True)


def fresh(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    args = ap.parse_args()
    ensure_sqlite3()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    pw = os.path.join(target, "release", "pipewise")
    os.makedirs(args.out, exist_ok=True)
    big = os.path.join(args.out, f"org-{args.rows}")
    small = os.path.join(args.out, f"org-{args.rows // 10}")
    double = os.path.join(args.out, f"org-{args.rows * 2}")
    for d, n in ((big, args.rows), (small, args.rows // 10), (double, args.rows * 2)):
        if not os.path.exists(os.path.join(d, "opportunities.csv")):
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "gen_opportunities.py"), str(n), d], check=True)
    schema = open(os.path.join(ROOT, "crates/store/src/migrations/0001_initial.sql")).read()
    db = os.path.join(args.out, "bench.db")

    def pipewise_import(d, env=None):
        fresh(db)
        subprocess.run([pw, "--db", db, "import", "csv", os.path.join(d, "users.csv"), os.path.join(d, "accounts.csv")], check=True, stdout=subprocess.DEVNULL, env=env)
        return run([pw, "--db", db, "import", "csv", os.path.join(d, "opportunities.csv")], env=env)

    # The same import into a database encrypted at rest (SQLCipher; the key
    # is a benchmark constant, not a secret).
    keyed = dict(os.environ, PIPEWISE_KEY="benchmark key, not a secret")
    keyed.pop("PIPEWISE_KEY_FILE", None)
    plain = dict(os.environ)
    plain.pop("PIPEWISE_KEY", None)
    plain.pop("PIPEWISE_KEY_FILE", None)

    def sqlite_raw(d):
        fresh(db)
        return run(["sqlite3", db, f".import --csv {os.path.join(d, 'opportunities.csv')} opportunities_raw"])

    def sqlite_schema(d):
        fresh(db)
        setup = schema + f"""
.import --csv {os.path.join(d, 'users.csv')} users_raw
.import --csv {os.path.join(d, 'accounts.csv')} accounts_raw
INSERT INTO users (id, name, email, role, region, hire_date) SELECT * FROM users_raw;
INSERT INTO accounts (id, name, industry, employees, annual_revenue, location) SELECT * FROM accounts_raw;
"""
        subprocess.run(["sqlite3", db], input=setup.encode(), check=True)
        script = f"""PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536;
.import --csv {os.path.join(d, 'opportunities.csv')} opportunities_raw
BEGIN;
INSERT INTO opportunities (id, name, account_id, owner_id, amount, stage, forecast_category, created_at, close_date, lead_source)
  SELECT * FROM opportunities_raw;
COMMIT;
"""
        return run(["sqlite3", db], stdin=script)

    results = {}
    for name, fn in (("pipewise", lambda d: pipewise_import(d, plain)), ("pipewise, encrypted at rest", lambda d: pipewise_import(d, keyed)), ("sqlite3 raw .import", sqlite_raw), ("sqlite3 .import + INSERT into pipewise schema", sqlite_schema)):
        times, rss = [], []
        for _ in range(args.runs):
            t, m = fn(big)
            times.append(t)
            rss.append(m)
        results[name] = {"seconds": statistics.median(times), "rows_per_s": args.rows / statistics.median(times), "max_rss_mib": max(rss), "runs": times}
    t_small, rss_small = pipewise_import(small, plain)
    t_double, rss_double = pipewise_import(double, plain)
    results["pipewise"]["max_rss_mib_at_tenth"] = rss_small
    results["pipewise"]["max_rss_mib_at_double"] = rss_double
    results["pipewise"]["rows_per_s_at_double"] = 2 * args.rows / t_double
    fresh(db)

    print(f"\nImport of {args.rows:,} opportunities (10 columns, {os.path.getsize(os.path.join(big, 'opportunities.csv')) / 1e6:.0f} MB), median of {args.runs} runs")
    print(f"{'importer':<48} {'seconds':>8} {'rows/s':>10} {'peak RSS':>9}")
    for name, r in results.items():
        print(f"{name:<48} {r['seconds']:>8.2f} {r['rows_per_s']:>10,.0f} {r['max_rss_mib']:>7.0f}MB")
    pw_r = results["pipewise"]
    print(f"\npipewise / sqlite3 raw .import speed: {pw_r['rows_per_s'] / results['sqlite3 raw .import']['rows_per_s']:.2f}")
    print(f"pipewise encrypted / pipewise plaintext time: {results['pipewise, encrypted at rest']['seconds'] / pw_r['seconds']:.2f}")
    print(f"pipewise / sqlite3 into the same schema: {pw_r['rows_per_s'] / results['sqlite3 .import + INSERT into pipewise schema']['rows_per_s']:.2f}")
    print(f"pipewise peak RSS at {args.rows // 10:,} rows: {rss_small:.0f} MB; at {args.rows:,}: {pw_r['max_rss_mib']:.0f} MB; at {2 * args.rows:,}: {rss_double:.0f} MB ({2 * args.rows / t_double:,.0f} rows/s)")
    with open(os.path.join(args.out, "import-bench.json"), "w") as f:
        json.dump({"rows": args.rows, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
