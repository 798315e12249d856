#!/usr/bin/env python3
"""Writes a canonical-format org for import benchmarks: users.csv, accounts.csv and
an opportunities.csv of N rows (10 columns, realistic values), deterministically."""
import csv, random, sys, os, datetime

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out = sys.argv[2] if len(sys.argv) > 2 else "bench-out"
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(42)
    reps = [f"u{i:04d}" for i in range(500)]
    with open(os.path.join(out, "users.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "email", "role", "region", "hire_date"])
        for i, r in enumerate(reps):
            w.writerow([r, f"Rep {i}", f"rep{i}@example.com", "rep", rnd.choice(["East", "West", "EMEA", "APAC"]), f"20{rnd.randint(15, 24)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}"])
    accounts = [f"a{i:05d}" for i in range(20_000)]
    with open(os.path.join(out, "accounts.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "industry", "employees", "annual_revenue", "location"])
        for i, a in enumerate(accounts):
            w.writerow([a, f"Company {i}", rnd.choice(["software", "retail", "finance", "medical"]), rnd.randint(10, 50000), rnd.randint(1, 5000) * 100000, "United States"])
    stages = ["prospecting", "qualification", "discovery", "proposal", "negotiation", "closed_won", "closed_lost"]
    cats = ["pipeline", "best_case", "commit", "closed", "omitted"]
    base = datetime.date(2022, 1, 1)
    with open(os.path.join(out, "opportunities.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "account_id", "owner_id", "amount", "stage", "forecast_category", "created_at", "close_date", "lead_source"])
        for i in range(n):
            created = base + datetime.timedelta(days=rnd.randint(0, 1000))
            close = created + datetime.timedelta(days=rnd.randint(14, 200))
            w.writerow([
                f"opp{i:08d}", f"Deal {i}", rnd.choice(accounts), rnd.choice(reps),
                f"{rnd.randint(1, 2000) * 50}.00", rnd.choice(stages), rnd.choice(cats),
                f"{created.isoformat()}T{rnd.randint(8, 18):02d}:{rnd.randint(0, 59):02d}:00Z", close.isoformat(),
                rnd.choice(["web", "referral", "partner", "outbound", "event"]),
            ])

if __name__ == "__main__":
    main()
