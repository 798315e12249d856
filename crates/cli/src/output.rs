//! Human-readable output: tables, progress bars.

use std::fmt::Write as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipewise_ingest::ImportReport;
use pipewise_store::Stats;

/// A byte progress bar on stderr, shown only on a terminal and for files
/// large enough to take a moment.
pub struct Bar {
    enabled: bool,
    bar: std::cell::RefCell<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(enabled: bool) -> Self {
        Bar {
            enabled,
            bar: std::cell::RefCell::new(None),
        }
    }
}

impl pipewise_ingest::Progress for Bar {
    fn begin(&self, label: &str, total_bytes: u64) {
        if !self.enabled || total_bytes < 4 << 20 {
            return;
        }
        let pb = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let name = std::path::Path::new(label)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        pb.set_message(name);
        *self.bar.borrow_mut() = Some(pb);
    }
    fn advance_to(&self, bytes: u64) {
        if let Some(pb) = self.bar.borrow().as_ref() {
            pb.set_position(bytes);
        }
    }
    fn end(&self) {
        if let Some(pb) = self.bar.borrow_mut().take() {
            pb.finish_and_clear();
        }
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn money(x: f64) -> String {
    pipewise_core::value::format_money(x)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

pub fn report_text(db: &str, r: &ImportReport) -> String {
    let mut s = String::new();
    let verb = if r.dry_run && r.ok() {
        "Dry run (nothing written): would import"
    } else if r.committed {
        "Imported"
    } else if !r.ok() {
        "Not imported (errors below; nothing written):"
    } else {
        "Checked (nothing written)"
    };
    let _ = writeln!(
        s,
        "{verb} {} ({} source{}) into {db}",
        r.kind,
        r.sources.len(),
        if r.sources.len() == 1 { "" } else { "s" }
    );
    if !r.entities.is_empty() {
        // Counts of an import that did not land are what it would have done.
        let (ins, upd) = if r.committed {
            ("inserted", "updated")
        } else {
            ("would add", "would update")
        };
        let _ = writeln!(
            s,
            "  {:<22} {:>10} {:>10} {:>12} {:>10} {:>10}",
            "entity", "rows", ins, upd, "unchanged", "skipped"
        );
        for (e, c) in &r.entities {
            let _ = writeln!(
                s,
                "  {:<22} {:>10} {:>10} {:>12} {:>10} {:>10}",
                e,
                thousands(c.rows),
                thousands(c.inserted),
                thousands(c.updated),
                thousands(c.unchanged),
                thousands(c.skipped)
            );
        }
    }
    if r.history_recorded > 0 {
        let _ = writeln!(
            s,
            "  opportunity history entries written: {}",
            thousands(r.history_recorded)
        );
    }
    if r.transcript_cues > 0 {
        let _ = writeln!(
            s,
            "  transcript cues read: {}; without a speaker: {}",
            thousands(r.transcript_cues),
            thousands(r.cues_without_speaker)
        );
    }
    for (e, n) in &r.created_from_references {
        let _ = writeln!(s, "  created from references: {} {e}", thousands(*n));
    }
    if !r.cleaned.is_empty() {
        let _ = writeln!(s, "  cleaned:");
        for c in &r.cleaned {
            let file = std::path::Path::new(&c.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    {file} column {:?}: {:?} -> {:?} in {} rows (aliases.{})",
                c.column,
                c.from,
                c.to,
                thousands(c.rows),
                c.rule
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "  errors:");
        for e in &r.errors {
            let _ = writeln!(s, "    {e}");
        }
        if r.errors_truncated {
            let _ = writeln!(
                s,
                "    ... more errors not listed (raise --max-errors to see them)"
            );
        }
    }
    s
}

pub fn stats_text(db: &str, st: &Stats) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Database {db} (schema v{}, {} imports)",
        st.schema_version, st.imports
    );
    let _ = match &st.encryption.cipher {
        Some(c) if st.encryption.encrypted => writeln!(s, "  Encrypted at rest: {c}."),
        _ => writeln!(
            s,
            "  Not encrypted: anyone who can read the file can read the data (set PIPEWISE_KEY and run `pipewise db encrypt`)."
        ),
    };
    let _ = writeln!(s, "  {:<22} {:>10}  {}", "entity", "rows", "date range");
    for (name, e) in &st.entities {
        if e.count == 0 {
            continue;
        }
        let range = match (&e.first, &e.last, &e.time_field) {
            (Some(a), Some(b), Some(f)) => {
                format!("{f} {} .. {}", &a[..a.len().min(10)], &b[..b.len().min(10)])
            }
            _ => String::new(),
        };
        let _ = writeln!(s, "  {:<22} {:>10}  {range}", name, thousands(e.count));
    }
    let empty: Vec<&str> = st
        .entities
        .iter()
        .filter(|(_, e)| e.count == 0)
        .map(|(n, _)| n.as_str())
        .collect();
    if !empty.is_empty() {
        let _ = writeln!(s, "  no data yet: {}", empty.join(", "));
    }
    let f = &st.data_quality.findings;
    if f.is_empty() {
        let _ = writeln!(s, "Data quality: no findings");
    } else {
        let _ = writeln!(s, "Data quality ({} findings):", f.len());
        for x in f {
            let _ = writeln!(
                s,
                "  [{}] {}: {} (e.g. {})",
                x.kind,
                x.entity,
                x.message_with_count(),
                x.examples.join(", ")
            );
        }
    }
    s
}

trait MessageWithCount {
    fn message_with_count(&self) -> String;
}
impl MessageWithCount for pipewise_store::Finding {
    fn message_with_count(&self) -> String {
        if self.message.starts_with(|c: char| c.is_ascii_digit()) {
            self.message.clone()
        } else {
            format!("{} {}", thousands(self.count), self.message)
        }
    }
}

pub fn pipeline_text(st: &Stats) -> String {
    let p = &st.pipeline;
    let mut s = String::new();
    let _ = writeln!(s, "Pipeline");
    for b in &p.by_stage {
        let _ = writeln!(
            s,
            "  {:<14} {:>7} deals  {:>10}",
            b.stage,
            thousands(b.count),
            money(b.amount)
        );
    }
    let _ = writeln!(
        s,
        "  open: {} deals; closed: {} won ({} booked), {} lost; win rate {}",
        thousands(p.open),
        thousands(p.won),
        money(p.won_amount),
        thousands(p.lost),
        pct(p.win_rate)
    );
    let mut reps: Vec<_> = p.reps.iter().filter(|r| r.won + r.lost >= 10).collect();
    reps.sort_by(|a, b| {
        b.win_rate
            .partial_cmp(&a.win_rate)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !reps.is_empty() {
        let _ = writeln!(
            s,
            "\nWin rate by rep (reps with 10+ closed deals; best and worst five)"
        );
        let _ = writeln!(
            s,
            "  {:<24} {:<28} {:>6} {:>6} {:>6} {:>8} {:>10}",
            "rep", "team", "open", "won", "lost", "win rate", "booked"
        );
        let show: Vec<_> = if reps.len() > 10 {
            reps[..5]
                .iter()
                .chain(reps[reps.len() - 5..].iter())
                .collect()
        } else {
            reps.iter().collect()
        };
        for (i, r) in show.iter().enumerate() {
            if reps.len() > 10 && i == 5 {
                let _ = writeln!(s, "  ...");
            }
            let _ = writeln!(
                s,
                "  {:<24} {:<28} {:>6} {:>6} {:>6} {:>8} {:>10}",
                r.name,
                r.team.as_deref().unwrap_or("-"),
                r.open,
                r.won,
                r.lost,
                pct(r.win_rate),
                money(r.won_amount)
            );
        }
    }
    s
}

/// A fraction-done progress bar on stderr (terminal only).
pub struct FractionBar {
    bar: Option<ProgressBar>,
}

impl FractionBar {
    pub fn new(enabled: bool, label: &str) -> Self {
        let bar = enabled.then(|| {
            let pb = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {percent}% eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            pb
        });
        FractionBar { bar }
    }
    pub fn set(&self, fraction: f64) {
        if let Some(pb) = &self.bar {
            pb.set_position((fraction * 1000.0) as u64);
        }
    }
    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

pub fn sim_text(s: &pipewise_sim::Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Simulated into {}", s.out.display());
    for (name, n) in &s.rows {
        let _ = writeln!(out, "  {:<22} {:>12}", name, thousands(*n));
    }
    let _ = writeln!(
        out,
        "  win rate {}; lead conversion {:.1}%; leads never answered {:.1}%; {} transcripts ({} as WebVTT)",
        pct(s.win_rate),
        s.lead_conversion_rate * 100.0,
        s.leads_never_answered * 100.0,
        thousands(s.transcripts),
        s.vtt_files
    );
    if let Some(p) = &s.policy {
        let _ = writeln!(
            out,
            "  from {}: routing {}, cadence {}: {} leads, {} converted ({:.1}%), {:.1}% never answered",
            p.start,
            p.routing,
            p.cadence,
            thousands(p.leads),
            thousands(p.converted),
            p.conversion_rate * 100.0,
            p.never_answered * 100.0
        );
    }
    if let Some(f) = s
        .focus
        .as_ref()
        .filter(|f| f.policy != "none" || f.meetings > 0)
    {
        let _ = writeln!(
            out,
            "  from {}: focus {}: {} focus meetings (expected bookings they added {}, hidden truth)",
            f.start,
            f.policy,
            thousands(f.meetings),
            money(f.true_value)
        );
        if let (Some(a), Some(e)) = (f.adherence, f.true_effect) {
            let _ = writeln!(
                out,
                "    {} deal weeks recommended, {} followed ({:.1}%; at most twice the weekly budget per rep); {} meetings on reps' own picks; a recommended meeting was worth {:+.1} points of win probability, following one rather than not {} (hidden truth; the recommendation log is action_recommendations.csv)",
                thousands(f.recommended),
                thousands(f.followed),
                a * 100.0,
                thousands(f.meetings - f.followed),
                e * 100.0,
                f.true_effect_of_following
                    .map_or_else(|| "-".to_string(), |x| format!("{:+.1}", x * 100.0))
            );
        }
    }
    if let Some(f) = &s.focus {
        let _ = writeln!(
            out,
            "  from {}: {} deals won, bookings {} to the window's end; {} won, {} whenever they close (bookings of two runs differ by chance as well as by policy)",
            f.start,
            thousands(f.won),
            money(f.bookings),
            thousands(f.won_eventually),
            money(f.bookings_eventually)
        );
    }
    let _ = writeln!(
        out,
        "  hidden truth: {}",
        s.out.join("ground_truth.json").display()
    );
    out
}

pub fn org_text(st: &Stats) -> String {
    let mut s = String::new();
    let roles: Vec<String> = st
        .org
        .users_by_role
        .iter()
        .map(|(r, n)| format!("{n} {r}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    let _ = writeln!(
        s,
        "Org: {} teams in {} regions ({}); {}",
        st.org.teams,
        st.org.regions.len(),
        st.org.regions.join(", "),
        roles.join(", ")
    );
    let _ = writeln!(
        s,
        "Data: {} accounts, {} contacts, {} leads, {} opportunities, {} history entries, {} activities, {} call transcripts",
        thousands(st.counts["accounts"]),
        thousands(st.counts["contacts"]),
        thousands(st.counts["leads"]),
        thousands(st.counts["opportunities"]),
        thousands(st.counts["opportunity_history"]),
        thousands(st.counts["activities"]),
        thousands(st.counts["conversations"])
    );
    s
}

pub fn leads_text(st: &Stats) -> String {
    let l = &st.leads;
    let mut s = String::new();
    if l.leads == 0 {
        return s;
    }
    let _ = writeln!(
        s,
        "Lead response: {} leads, {:.1}% answered, median first response {}; {:.1}% converted",
        thousands(l.leads),
        l.answered as f64 * 100.0 / l.leads as f64,
        l.median_response_minutes
            .map_or("-".into(), |m| if m < 120.0 {
                format!("{m:.0} min")
            } else {
                format!("{:.1} h", m / 60.0)
            }),
        l.converted as f64 * 100.0 / l.leads as f64
    );
    let _ = writeln!(
        s,
        "  {:<18} {:>8} {:>10}",
        "first response", "leads", "converted"
    );
    for b in &l.by_response_time {
        let _ = writeln!(
            s,
            "  {:<18} {:>8} {:>10}",
            b.band,
            thousands(b.leads),
            pct(b.conversion_rate)
        );
    }
    s
}

/// `pipewise currency` for people.
pub fn currency_text(
    setting: &Option<String>,
    c: &pipewise_store::read::Currencies,
    by: &[(Option<String>, i64, f64)],
    rates: &[(String, String, f64)],
    in_corporate: &std::collections::BTreeMap<String, (usize, f64)>,
) -> String {
    let mut s = String::new();
    match (setting, &c.corporate) {
        (Some(code), _) => s.push_str(&format!("Corporate currency: {code}\n")),
        (None, Some(code)) => s.push_str(&format!(
            "Corporate currency: not set; amounts are read as {code}, the currency of the most deals (set one with `pipewise currency --corporate CODE`)\n"
        )),
        (None, None) => s.push_str("Corporate currency: not set, and no deal names a currency: amounts are taken as they are\n"),
    }
    s.push_str("\nDeal amounts by currency (as recorded):\n");
    for (cur, n, a) in by {
        s.push_str(&format!(
            "  {:<10} {:>8} deals  {:>14.2}\n",
            cur.as_deref().unwrap_or("(none)"),
            n,
            a
        ));
    }
    s.push_str(&format!("\nExchange rates: {}\n", rates.len()));
    for (cur, from, r) in rates.iter().take(20) {
        s.push_str(&format!("  {cur} from {from}: {r}\n"));
    }
    if rates.len() > 20 {
        s.push_str(&format!("  ... and {} more\n", rates.len() - 20));
    }
    s.push_str(&format!("\nConverted deals: {}\n", c.converted));
    if let Some(k) = &c.corporate {
        s.push_str(&format!("\nDeal amounts in {k} (what every total uses):\n"));
        for (cur, (n, a)) in in_corporate {
            s.push_str(&format!(
                "  recorded in {:<8} {:>8} deals  {:>14.2} {k}\n",
                cur, n, a
            ));
        }
    }
    if let Some(w) = c.warning() {
        s.push_str(&format!("Left out: {w}\n"));
        for u in c.unconverted.iter().take(10) {
            s.push_str(&format!(
                "  {}: {} {:.2} (rate date {})\n",
                u.opportunity_id,
                u.currency,
                u.amount,
                u.on.as_deref().unwrap_or("unknown")
            ));
        }
    }
    s
}

/// Progress bars for the use cases' long steps: one bar per step, shown on
/// stderr unless disabled (`--json`, `--quiet`).
pub struct Bars {
    enabled: bool,
    current: std::sync::Mutex<Option<(String, FractionBar)>>,
}

impl Bars {
    pub fn new(enabled: bool) -> Bars {
        Bars {
            enabled,
            current: std::sync::Mutex::new(None),
        }
    }
}

impl pipewise_app::Progress for Bars {
    fn report(&self, step: &str, fraction: f64) {
        let mut c = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if c.as_ref().is_none_or(|(s, _)| s != step) {
            if let Some((_, bar)) = c.take() {
                bar.finish();
            }
            *c = Some((step.to_string(), FractionBar::new(self.enabled, step)));
        }
        if let Some((_, bar)) = c.as_ref() {
            bar.set(fraction);
            if fraction >= 1.0 {
                bar.finish();
                *c = None;
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some((_, bar)) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish();
        }
    }
}

static PSEUDONYMISE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns pseudonyms on for every export of this run (`--pseudonymise`).
pub fn set_pseudonymise(on: bool) {
    PSEUDONYMISE.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// The pseudonymiser of an export when the run has `--pseudonymise`
/// (`None` without it). Errors: no key (`PIPEWISE_KEY` or `--key-file`),
/// a short one, a database error.
pub fn pseudonymiser(
    store: &pipewise_store::SqliteStore,
) -> anyhow::Result<Option<pipewise_app::privacy::Pseudonymiser>> {
    if !PSEUDONYMISE.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    let key = pipewise_app::privacy::load_key(None)?;
    Ok(Some(pipewise_app::privacy::Pseudonymiser::new(
        key,
        &store.people()?,
    )))
}

/// One exported row, its people replaced by pseudonyms when `p` is given.
pub fn export_row<I, T>(p: Option<&pipewise_app::privacy::Pseudonymiser>, cells: I) -> Vec<String>
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    cells
        .into_iter()
        .map(|c| match p {
            Some(p) => p.cell(c.as_ref()),
            None => c.as_ref().to_string(),
        })
        .collect()
}

/// Standard output held back while a command runs (`--pseudonymise`):
/// file descriptor 1 is a pipe read by a thread until [`Held::finish`]
/// puts the real standard output back.
pub struct Held {
    #[cfg(unix)]
    saved: i32,
    #[cfg(unix)]
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl Held {
    /// Starts holding standard output back. Errors: the pipe cannot be made
    /// (or the platform is not Unix).
    #[cfg(unix)]
    pub fn start() -> anyhow::Result<Held> {
        use std::io::{Read as _, Write as _};
        use std::os::fd::FromRawFd as _;
        std::io::stdout().flush()?;
        let mut fds = [0i32; 2];
        // SAFETY: plain POSIX calls on descriptors this function owns; fd 1
        // is swapped for the pipe's write end and restored by `finish`.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                anyhow::bail!(
                    "cannot hold the output back: {}",
                    std::io::Error::last_os_error()
                );
            }
            let saved = libc::dup(1);
            if saved < 0 || libc::dup2(fds[1], 1) < 0 {
                anyhow::bail!(
                    "cannot hold the output back: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fds[1]);
            let mut read_end = std::fs::File::from_raw_fd(fds[0]);
            let reader = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = read_end.read_to_end(&mut v);
                v
            });
            Ok(Held { saved, reader })
        }
    }

    #[cfg(not(unix))]
    pub fn start() -> anyhow::Result<Held> {
        anyhow::bail!("--pseudonymise of printed output needs a Unix system")
    }

    /// Puts the real standard output back; what was printed meanwhile.
    #[cfg(unix)]
    pub fn finish(self) -> anyhow::Result<String> {
        use std::io::Write as _;
        std::io::stdout().flush()?;
        // SAFETY: restores the descriptor saved by `start`; the pipe's
        // last write end closes, so the reader sees its end.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
        let bytes = self
            .reader
            .join()
            .map_err(|_| anyhow::anyhow!("the output reader failed"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    #[cfg(not(unix))]
    pub fn finish(self) -> anyhow::Result<String> {
        Ok(String::new())
    }
}
