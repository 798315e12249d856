//! Territory use cases beyond the engines: the benchmark of segments and
//! plans at the scale of a large org (`pipewise bench territories`).

use std::time::Instant;

use pipewise_engines::segments::{SegmentOptions, segment};
use pipewise_engines::territory::{PlanOptions, plan};
use pipewise_store::read::{CrmData, User};

/// Timings of `pipewise bench territories`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TerritoryBench {
    /// Segments of this many accounts (copies of the database's, with its
    /// deals left as they are): seconds, and the k chosen.
    pub segment_accounts: usize,
    pub segment_seconds: f64,
    pub segment_k: usize,
    /// A plan for this many accounts and reps (copies of the database's
    /// accounts with copies of their deals, owned by synthetic reps in 4
    /// regions): seconds for segments, then for the plan (win rates,
    /// potentials, both programs, repair, report).
    pub plan_accounts: usize,
    pub plan_reps: usize,
    pub plan_deals: usize,
    pub plan_segment_seconds: f64,
    pub plan_seconds: f64,
    pub plan_status: String,
    pub plan_classes: usize,
    pub plan_variables: usize,
    pub plan_moved_share: f64,
    pub plan_reps_within_band: usize,
}

/// `n` accounts copied from `crm`'s (ids `b…`), owned round-robin by `reps`
/// synthetic reps (role rep) within 4 regions; with `deals`, each copy gets
/// copies of its source account's deals owned by its new owner.
fn scaled(crm: &CrmData, n: usize, reps: usize, deals: bool) -> CrmData {
    const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
    let mut out = CrmData {
        products: crm.products.clone(),
        currencies: crm.currencies.clone(),
        ..CrmData::default()
    };
    out.users = (0..reps)
        .map(|i| User {
            id: format!("bench-r{i:04}"),
            name: format!("Rep {i}"),
            role: Some("rep".into()),
            region: Some(REGIONS[i % 4].into()),
            ..User::default()
        })
        .collect();
    let src = crm.accounts.len().max(1);
    let mut by_account: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (i, o) in crm.opportunities.iter().enumerate() {
        if let Some(a) = o.account_id.as_deref() {
            by_account.entry(a).or_default().push(i);
        }
    }
    for i in 0..n {
        let s = &crm.accounts[i % src];
        let region = i % 4;
        // Reps of the region: region, region + 4, ...
        let in_region = (reps + 3 - region) / 4;
        let owner = region + 4 * ((i / 4) % in_region.max(1));
        let owner_id = format!("bench-r{owner:04}");
        let id = format!("b{i:07}");
        if deals || i < src {
            for &k in by_account
                .get(s.id.as_str())
                .map_or(&[][..], |v| v.as_slice())
            {
                let mut o = crm.opportunities[k].clone();
                o.id = format!("{}-{i}", o.id);
                o.account_id = Some(id.clone());
                o.owner_id = owner_id.clone();
                out.opportunities.push(o);
            }
        }
        let mut a = s.clone();
        a.id = id;
        a.owner_id = Some(owner_id);
        out.accounts.push(a);
    }
    out
}

/// Times segments for `segment_accounts` accounts and a plan for
/// `accounts` accounts among `reps` reps, built from `crm`'s accounts and
/// deals. Errors: a database without accounts, fewer than 8 reps, or an
/// engine's error.
pub fn bench(
    crm: &CrmData,
    accounts: usize,
    reps: usize,
    segment_accounts: usize,
) -> anyhow::Result<TerritoryBench> {
    anyhow::ensure!(!crm.accounts.is_empty(), "the database holds no accounts");
    anyhow::ensure!(reps >= 8, "--reps: at least 8 (two per region)");
    let big = scaled(crm, segment_accounts, reps, false);
    let t = Instant::now();
    let s = segment(&big, &SegmentOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let segment_seconds = t.elapsed().as_secs_f64();
    drop(big);
    let data = scaled(crm, accounts, reps, true);
    let t = Instant::now();
    let seg = segment(&data, &SegmentOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan_segment_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let p = plan(&data, &seg, &PlanOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan_seconds = t.elapsed().as_secs_f64();
    Ok(TerritoryBench {
        segment_accounts,
        segment_seconds,
        segment_k: s.k,
        plan_accounts: accounts,
        plan_reps: reps,
        plan_deals: data.opportunities.len(),
        plan_segment_seconds,
        plan_seconds,
        plan_status: p.status,
        plan_classes: p.classes,
        plan_variables: p.variables,
        plan_moved_share: p.moved_share,
        plan_reps_within_band: p.proposed.reps_within_band,
    })
}
