//! The `pipewise` binary: argument parsing and printing only. The work is done
//! by the library crates (ingest, store, and later the engines).

mod access_cmd;
mod accounts_cmd;
mod actions_cmd;
mod coach_cmd;
mod comp_cmd;
mod fairness_cmd;
mod forecast_cmd;
mod leads_cmd;
mod messages_cmd;
mod model_cmd;
mod monitor_cmd;
mod output;
mod predict_cmd;
mod stage_cmd;
mod territory_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use pipewise_core::Entity;
use pipewise_ingest::{ImportOptions, ImportReport, Mapping, Source, TranscriptLink};
use pipewise_store::{SqliteStore, Store};

#[derive(Parser)]
#[command(
    name = "pipewise",
    version,
    about = "Open-source sales intelligence: import your CRM, see what is real."
)]
struct Cli {
    /// Database file.
    #[arg(
        long,
        global = true,
        env = "PIPEWISE_DB",
        default_value = "pipewise.db"
    )]
    db: PathBuf,
    /// The org's key in a file (else PIPEWISE_KEY; 16 characters or more):
    /// a new database is created encrypted with it, an encrypted one needs
    /// it, and `--pseudonymise` makes pseudonyms with it.
    #[arg(long, global = true, env = "PIPEWISE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Replace every person in what the command prints and in the files it
    /// exports (ids, and names and emails inside text) by a stable keyed
    /// pseudonym; `pipewise pseudonym reveal` maps one back for whoever
    /// holds the key.
    #[arg(long, global = true)]
    pseudonymise: bool,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import data into the database (all or nothing).
    #[command(subcommand)]
    Import(ImportCmd),
    /// Currencies: the corporate currency, deal amounts by currency, exchange
    /// rates, and the amounts that cannot be converted (left out of totals).
    Currency {
        /// Set the corporate currency (ISO 4217 code) every total is in.
        #[arg(long)]
        corporate: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Counts, date ranges, data-quality findings and a pipeline summary.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// The data model: every entity and field (`--markdown` for docs/data-format.md).
    Schema {
        #[arg(long)]
        markdown: bool,
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
    },
    /// Simulate a whole sales organisation whose hidden truth is known.
    Simulate(SimArgs),
    /// Train the win and slip models from the database's history; register them.
    Train(TrainCmd),
    /// Score the open deals with the active models (database and CSV).
    Score(ScoreCmd),
    /// Why a deal has the probability it has, factor by factor.
    Explain {
        opportunity_id: String,
        /// Explain as of this date (default: the latest date in the data).
        #[arg(long)]
        as_of: Option<String>,
        /// Which model: win or slip.
        #[arg(long, default_value = "win")]
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// The model registry: every version, its window and metrics.
    Models {
        /// Print the model card of KIND (active version) or KIND:VERSION.
        #[arg(long)]
        card: Option<String>,
        /// Make KIND:VERSION the active version.
        #[arg(long)]
        activate: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inbound leads: routing recommendations and first-reply drafts.
    #[command(subcommand)]
    Leads(leads_cmd::LeadsCmd),
    /// Territories: account segments by how they buy, which reps win where,
    /// and balanced account plans against the current one.
    #[command(subcommand)]
    Territories(territory_cmd::TerritoriesCmd),
    /// Accounts: each customer's next product and each renewal's churn risk.
    #[command(subcommand)]
    Accounts(accounts_cmd::AccountsCmd),
    /// Shows and checks a follow-up cadence (TOML).
    Cadences(leads_cmd::CadencesArgs),
    /// Bookings forecast of a month or quarter with its range, by rep, team or region.
    Forecast(forecast_cmd::ForecastArgs),
    /// Backtests: forecasts made at past dates with what was known then.
    #[command(subcommand)]
    Backtest(forecast_cmd::BacktestCmd),
    /// Benchmarks of the engines' hot paths (docs/benchmarks.md).
    #[command(subcommand)]
    Bench(forecast_cmd::BenchCmd),
    /// Reps: stage bias (entered stages against the evidence).
    #[command(subcommand)]
    Reps(stage_cmd::RepsCmd),
    /// The open pipeline: deals ahead of or behind their evidence, deals at risk.
    #[command(subcommand)]
    Pipeline(stage_cmd::PipelineCmd),
    /// Coaching: each rep's metrics against peers and top performers, skill
    /// gaps ranked by what closing them is worth, and a coaching plan.
    Coach(coach_cmd::CoachArgs),
    /// The return on AI-assisted coaching: managers' coaching time priced as
    /// the share of salary it takes, the software, the revenue a win-rate
    /// change brings (measured on the database when not given), payback.
    Roi(coach_cmd::RoiArgs),
    /// Incentive plans: each rep's payout, the cost and the pay curve of a
    /// plan (TOML), or two side by side.
    #[command(subcommand)]
    Comp(comp_cmd::CompCmd),
    /// Message tests: template variants as Thompson-sampling bandits.
    #[command(subcommand)]
    Messages(messages_cmd::MessagesCmd),
    /// Next-best actions: a rep's ranked list for a day (deals, lead
    /// follow-ups, renewals, cross-sell) with when, channel, message, why
    /// and expected value, fitted to their selling time; `dismiss` one with
    /// a reason.
    Actions(actions_cmd::ActionsArgs),
    /// Adherence: the share of recommended actions reps acted on within
    /// their window, by rep, team and action.
    Adherence(actions_cmd::AdherenceArgs),
    /// Fairness: a model's held-out scores (win, slip, lead) or the coaching
    /// recommendations by group of reps and of customers: demographic
    /// parity, equalized odds, calibration by group, the four-fifths rule.
    Fairness(fairness_cmd::FairnessArgs),
    /// Drift and accuracy: the active model's inputs in the latest weeks
    /// against what it was fitted on (PSI, Jensen-Shannon, Wasserstein) and
    /// its accuracy by month as outcomes arrive, with alerts.
    Monitor(monitor_cmd::MonitorArgs),
    /// Recorded calls: conversation analytics.
    #[command(subcommand)]
    Calls(coach_cmd::CallsCmd),
    /// Fit and apply a model on any CSV with an outcome column (lead exports).
    #[command(subcommand)]
    Model(model_cmd::ModelCmd),
    /// Serve the HTTP API (OpenAPI at /openapi.json) on the database.
    Serve(access_cmd::ServeArgs),
    /// API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(access_cmd::TokenCmd),
    /// Users as identities: roles, scopes, passwords.
    #[command(subcommand)]
    User(access_cmd::UserCmd),
    /// The audit log of who read or changed what; `audit verify` checks its hash chain.
    Audit(access_cmd::AuditArgs),
    /// Erase a person (GDPR article 17, CCPA): a contact, a lead or a user,
    /// removed or anonymised everywhere, the aggregates kept, the erasure
    /// audited without their identity, models trained on them marked for
    /// retraining, and the database file rewritten.
    Erase(access_cmd::EraseArgs),
    /// Retention: personal data past its age removed by a policy
    /// (transcripts, unconverted leads), logged in the audit log.
    #[command(subcommand)]
    Retention(access_cmd::RetentionCmd),
    /// Pseudonyms of exports (`--pseudonymise`): `pseudonym reveal P-...`
    /// says who one stands for, given the key.
    #[command(subcommand)]
    Pseudonym(access_cmd::PseudonymCmd),
    /// Encryption at rest of the database file (SQLCipher): encrypt it with
    /// the key, rotate the key, or decrypt it; `stats` says which it is.
    #[command(subcommand)]
    Db(access_cmd::DbCmd),
    /// Simulate a default org (40 reps, 24 months), import it into a fresh
    /// database and print what pipewise sees in it.
    Demo {
        /// Demo database file (recreated).
        #[arg(long, default_value = "pipewise-demo.db")]
        out: PathBuf,
        /// Where the simulated files go (recreated).
        #[arg(long, default_value = "pipewise-demo-data")]
        data: PathBuf,
        /// Load the Maven CRM export from this directory instead of simulating.
        #[arg(long)]
        maven: Option<PathBuf>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Then serve the demo database over HTTP, with ready-made tokens for
        /// a rep, a manager and the director (made an admin).
        #[arg(long)]
        serve: bool,
        /// With --serve: the address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct TrainCmd {
    /// The simulator's ground_truth.json: adds the oracle to the metrics table.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The tree learner: hist (histogram GBM) or perpetual.
    #[arg(long, value_enum, default_value = "hist")]
    learner: Learner,
    /// perpetual only: its complexity budget (higher: a faster learning rate
    /// and more complex trees).
    #[arg(long, default_value_t = 1.0)]
    budget: f32,
    /// Snapshots stop this many days before the data ends, so that most deals
    /// open then have an outcome.
    #[arg(long, default_value_t = 120)]
    horizon_days: i64,
    /// Fit the trees without the feature registry's known directions as
    /// monotone constraints (to measure what they cost; explanations may
    /// then say that a bad sign raised a score).
    #[arg(long)]
    no_monotone: bool,
    /// Also write the weekly snapshot rows the models learn from (each open
    /// deal at each date: labels and features) to this CSV; with
    /// --pseudonymise, people in it are pseudonymised.
    #[arg(long, value_name = "FILE")]
    training_data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct ScoreCmd {
    /// What to score: the open deals (win and slip models) or the open leads.
    #[arg(value_enum, default_value = "deals")]
    what: ScoreWhat,
    /// Score the deals open at this date (default: the latest date in the data).
    #[arg(long)]
    as_of: Option<String>,
    /// CSV for CRM write-back (default: scores.csv, or lead-scores.csv for leads).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leads: score with this model file (from `pipewise model fit`) instead
    /// of fitting one on the database's leads.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Factors kept per deal and model.
    #[arg(long, default_value_t = 3)]
    top: usize,
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Learner {
    Hist,
    Perpetual,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum ScoreWhat {
    Deals,
    Leads,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum RoutingArg {
    Territory,
    RoundRobin,
    Pipewise,
    PipewiseBatch,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum CadenceArg {
    Rep,
    Pipewise,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum AdherenceArg {
    Latent,
    Full,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum MessagesArg {
    /// Every variant of a message test sent evenly (probability 1/3).
    Even,
    /// pipewise's Thompson-sampling bandit, updated weekly from the
    /// outcomes known by then.
    Bandit,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum FocusArg {
    None,
    Own,
    Pipewise,
    /// pipewise's list valued with the simulator's true meeting effect:
    /// what knowing where meetings matter most would add.
    KnownEffect,
    /// Each deal week valued by the simulator's hidden value of a meeting:
    /// the ceiling of any policy with the same time.
    Oracle,
}

#[derive(Args, Clone)]
struct SimArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 40)]
    reps: usize,
    #[arg(long, default_value_t = 24)]
    months: u32,
    /// Output directory (canonical import files, transcripts/, ground_truth.json).
    #[arg(long)]
    out: PathBuf,
    /// First simulated day.
    #[arg(long, default_value = "2024-01-01")]
    start: String,
    /// Inbound leads per rep per month.
    #[arg(long, default_value_t = 14.0)]
    leads_per_rep_month: f64,
    /// Share of stage calls recorded with a transcript (0..1).
    #[arg(long, default_value_t = 0.35)]
    transcript_share: f64,
    /// How many recorded calls are also written as WebVTT files.
    #[arg(long, default_value_t = 25)]
    vtt_sample: usize,
    /// Every rep enters the true stage (no optimism, no sandbagging).
    #[arg(long)]
    no_bias: bool,
    /// No rep is better in one segment than another.
    #[arg(long)]
    no_affinity: bool,
    /// Response time does not affect lead conversion.
    #[arg(long)]
    no_speed_effect: bool,
    /// Follow-up touches do not affect lead conversion.
    #[arg(long)]
    no_touch_effect: bool,
    /// No rep converts one segment's leads better than another's.
    #[arg(long)]
    no_lead_fit: bool,
    /// A rep's queue of unanswered leads does not slow their replies.
    #[arg(long)]
    no_capacity: bool,
    /// The hour and weekday of a touch do not affect replies.
    #[arg(long)]
    no_contact_timing: bool,
    /// A first reply naming the inquiry's product and pain point draws no
    /// more replies than any other.
    #[arg(long)]
    no_personalisation: bool,
    /// Who owns each lead from --policy-start on: territory (a random rep of
    /// the lead's region, the org's own rule), round-robin (the region's reps
    /// in turn) or pipewise (the rep most likely to convert it, within
    /// capacity and fairness bounds, learned from the leads before the
    /// policy start); pipewise-batch as pipewise, but the leads arriving
    /// outside business hours are held and assigned together at the next
    /// opening by a linear program.
    #[arg(long, value_enum, default_value_t = RoutingArg::Territory)]
    routing: RoutingArg,
    /// How leads are followed up from --policy-start on: rep (each rep's own
    /// habit) or pipewise (8 touches over three weeks at the hours leads
    /// answer, stopping on a reply, the first reply naming the inquiry's
    /// product and pain point).
    #[arg(long, value_enum, default_value_t = CadenceArg::Rep)]
    cadence: CadenceArg,
    /// Which open deals reps give a focus meeting each week from
    /// --policy-start on (docs/actions.md): none; own (the biggest deals
    /// furthest along); pipewise (the next-best actions' list, learned from
    /// the history before the start, which each rep follows with their
    /// latent adherence, acting on their own picks otherwise). A held
    /// meeting strengthens the deal, twice as much when it had stalled.
    /// (`none` still makes the run comparable with the others: customers'
    /// renewals and expansions are keyed by their parent deal.)
    #[arg(long, value_enum)]
    focus: Option<FocusArg>,
    /// How the sending system picks each message test's variant, over the
    /// whole window.
    #[arg(long, value_enum, default_value_t = MessagesArg::Even)]
    messages: MessagesArg,
    /// Focus meetings per rep a week (both policies' thresholds are set on
    /// the 12 weeks before the start to give this many; no rep has more
    /// than twice as many in any week).
    #[arg(long, default_value_t = 3.0)]
    focus_per_week: f64,
    /// With --focus pipewise: whether reps follow the list with their
    /// latent adherence (each rep's own chance, written to the hidden
    /// truth) or all of it.
    #[arg(long, value_enum, default_value_t = AdherenceArg::Latent)]
    adherence: AdherenceArg,
    /// The day the --routing and --cadence policies take over (YYYY-MM-DD;
    /// default: 6 months before the window's end when either is not the
    /// org's own).
    #[arg(long)]
    policy_start: Option<String>,
    #[arg(long)]
    no_seasonality: bool,
    #[arg(long)]
    no_quarter_end: bool,
    /// Start with no customers: no renewals or expansions of deals won
    /// before the window (renewals then begin ten months in).
    #[arg(long)]
    no_installed_base: bool,
    /// Reps take holidays (three blocks of one to two weeks a year, written
    /// to out_of_office.csv): a lead owned by a rep who is away waits for
    /// their return.
    #[arg(long)]
    absences: bool,
    /// This region's reps (e.g. EMEA) enter every stage a stage ahead of
    /// the buyer, and the forecast category a step rosier, from
    /// --entry-bias-from on; outcomes are unchanged. A biased record of one
    /// group, which `pipewise fairness` should find.
    #[arg(long, value_name = "REGION")]
    entry_bias: Option<String>,
    /// When --entry-bias begins (YYYY-MM-DD; default: three quarters
    /// through the window), as when a new regional pipeline target starts.
    #[arg(long, value_name = "DATE", requires = "entry_bias")]
    entry_bias_from: Option<String>,
    /// A market shift from this day on (YYYY-MM-DD): deals created from then
    /// on are half the size and harder to win. For `pipewise monitor` to find.
    #[arg(long, value_name = "DATE")]
    drift_at: Option<String>,
    #[arg(long)]
    json: bool,
}

impl SimArgs {
    fn config(&self) -> Result<pipewise_sim::Config> {
        let start = pipewise_sim::time::parse_date(&self.start).with_context(|| {
            format!(
                "--start {:?}: expected a date such as 2024-01-01",
                self.start
            )
        })?;
        Ok(pipewise_sim::Config {
            seed: self.seed,
            reps: self.reps,
            months: self.months,
            start,
            leads_per_rep_month: self.leads_per_rep_month,
            transcript_share: self.transcript_share,
            vtt_sample: self.vtt_sample,
            bias: !self.no_bias,
            affinity: !self.no_affinity,
            speed_effect: !self.no_speed_effect,
            touch_effect: !self.no_touch_effect,
            lead_fit: !self.no_lead_fit,
            capacity: !self.no_capacity,
            contact_timing: !self.no_contact_timing,
            personalisation: !self.no_personalisation,
            seasonality: !self.no_seasonality,
            quarter_end: !self.no_quarter_end,
            installed_base: !self.no_installed_base,
            absences: self.absences,
            entry_bias: self.entry_bias.clone(),
            entry_bias_from: self
                .entry_bias_from
                .as_deref()
                .map(|d| {
                    pipewise_sim::time::parse_date(d).with_context(|| {
                        format!("--entry-bias-from {d:?}: expected a date such as 2025-01-01")
                    })
                })
                .transpose()?,
            drift_at: self
                .drift_at
                .as_deref()
                .map(|d| {
                    pipewise_sim::time::parse_date(d).with_context(|| {
                        format!("--drift-at {d:?}: expected a date such as 2025-10-01")
                    })
                })
                .transpose()?,
            ..pipewise_sim::Config::default()
        })
    }
}

#[derive(Args, Clone)]
struct CommonImport {
    /// Check everything and report what would change, without writing.
    #[arg(long)]
    dry_run: bool,
    /// Print the import report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Stop after listing this many errors.
    #[arg(long, default_value_t = 100)]
    max_errors: usize,
    /// Date changes whose source gives no time with this instant (default: now).
    #[arg(long)]
    as_of: Option<String>,
    /// Text encoding of the CSV files when not UTF-8: latin1 (ISO-8859-1),
    /// cp1252 (Excel), utf-16 (a byte-order mark is read by itself). Over the
    /// mapping's `encoding`.
    #[arg(long)]
    encoding: Option<String>,
}

#[derive(Subcommand)]
enum ImportCmd {
    /// A directory of canonical files (<entity>.csv or .jsonl), or of the files a mapping names.
    Dir {
        dir: PathBuf,
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        common: CommonImport,
    },
    /// The Maven Analytics CRM export (accounts, products, sales_teams, sales_pipeline).
    Maven {
        dir: PathBuf,
        #[command(flatten)]
        common: CommonImport,
    },
    /// CSV files: canonical (`--entity`, or named <entity>.csv) or through a mapping file.
    Csv {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, conflicts_with = "entity")]
        mapping: Option<PathBuf>,
        #[arg(long)]
        entity: Option<String>,
        #[command(flatten)]
        common: CommonImport,
    },
    /// JSONL files in the canonical format (one object per line).
    Jsonl {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        entity: Option<String>,
        #[command(flatten)]
        common: CommonImport,
    },
    /// Transcripts, linked by flags or a sidecar JSON per file: WebVTT (Zoom,
    /// Teams, Meet) or SubRip .srt (Otter, Meet, recorders), told apart by
    /// extension and content.
    #[command(visible_aliases = ["srt", "transcripts"])]
    Vtt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        opportunity: Option<String>,
        #[arg(long)]
        lead: Option<String>,
        /// The rep's user id.
        #[arg(long)]
        rep: Option<String>,
        /// Conversation id (one file only; default: the file name).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        started_at: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        common: CommonImport,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not failures; a bad argument under
            // --json is also said as JSON on stdout, as other failures are.
            let failed = e.use_stderr();
            if failed && std::env::args().any(|a| a == "--json") {
                let msg = e.kind().to_string();
                let detail = e.to_string();
                let first = detail
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or(&msg)
                    .trim_start_matches("error: ")
                    .to_string();
                println!(
                    "{}",
                    serde_json::json!({"error": first, "cannot_judge": false})
                );
            }
            let _ = e.print();
            return if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // The server sets up its own logs (request lines, JSON on demand).
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Demo { serve: true, .. }
    ) {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_target(false)
            .init();
        // Output piped into `head` and closed early ends the command quietly,
        // as Unix tools do, instead of a panic on a broken pipe. (The server
        // keeps Rust's default: a closed socket is an error, not a signal.)
        #[cfg(unix)]
        // SAFETY: restores the default disposition of one signal before any
        // thread starts; no handler runs Rust code.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if cli.pseudonymise {
        return pseudonymised(cli);
    }
    finish(run(cli))
}

/// The exit code of a run, its error printed (and as JSON on stdout when a
/// script asked for JSON).
fn finish(r: Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            let msg = one_line(&e);
            eprintln!("error: {msg}");
            // A script asked for JSON: the failure is JSON too.
            if std::env::args().any(|a| a == "--json") {
                let v = serde_json::json!({
                    "error": msg,
                    "cannot_judge": msg.contains("cannot judge"),
                });
                println!("{v}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the command with everything it prints held back, then prints it
/// with every person replaced by their pseudonym (the files it exports
/// are pseudonymised as they are written). Nothing is printed unreplaced:
/// when the pseudonyms cannot be made (no key, no database), only the
/// error is.
fn pseudonymised(cli: Cli) -> ExitCode {
    if matches!(
        cli.command,
        Command::Serve(_) | Command::Demo { serve: true, .. }
    ) {
        return finish(Err(anyhow::anyhow!(
            "--pseudonymise applies to what a command prints and exports; for the API, send the header `Pseudonymise: true`"
        )));
    }
    let db = cli.db.clone();
    let prepared = pipewise_app::privacy::configure_key(cli.key_file.as_deref())
        .and_then(|_| pipewise_app::privacy::load_key(None));
    if let Err(e) = prepared {
        return finish(Err(e));
    }
    output::set_pseudonymise(true);
    let held = match output::Held::start() {
        Ok(h) => h,
        Err(e) => return finish(Err(e)),
    };
    let code = finish(run(cli));
    let text = match held.finish() {
        Ok(t) => t,
        Err(e) => return finish(Err(e)),
    };
    let px = SqliteStore::open(&db)
        .map_err(anyhow::Error::from)
        .and_then(|s| output::pseudonymiser(&s))
        .and_then(|p| p.context("no pseudonymiser"));
    match px {
        Ok(px) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(px.output(&text).as_bytes());
            let _ = out.flush();
            code
        }
        Err(e) => finish(Err(
            e.context("cannot pseudonymise the output (nothing was printed)")
        )),
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

fn now() -> String {
    pipewise_core::value::format_instant(chrono::Utc::now())
}

fn entity_arg(name: &str) -> Result<Entity> {
    Entity::from_table(name).with_context(|| {
        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.table()).collect();
        format!(
            "unknown entity {name:?}; expected one of {}",
            known.join(", ")
        )
    })
}

fn entity_of_file(path: &Path, given: Option<&str>) -> Result<Entity> {
    if let Some(g) = given {
        return entity_arg(g);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Entity::from_table(&stem).with_context(|| {
        format!("{}: cannot tell the entity from the file name; pass --entity (e.g. --entity opportunities)", path.display())
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    pipewise_app::privacy::configure_key(cli.key_file.as_deref())?;
    match cli.command {
        Command::Import(cmd) => import_or_json_error(&cli.db, cmd),
        Command::Currency { corporate, json } => currency(&cli.db, corporate.as_deref(), json),
        Command::Stats { json } => {
            let store = open(&cli.db)?;
            let stats = store.stats()?;
            if json {
                let mut v = serde_json::to_value(&stats)?;
                v["database"] = serde_json::Value::String(cli.db.display().to_string());
                v["content_digest"] = serde_json::Value::String(store.content_digest()?);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!(
                    "{}",
                    output::stats_text(&cli.db.display().to_string(), &stats)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { markdown, json } => {
            if json {
                let v: Vec<serde_json::Value> = Entity::ALL
                    .iter()
                    .map(|e| serde_json::json!({"entity": e.table(), "key": e.key(), "doc": e.doc(), "fields": e.fields()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if markdown {
                print!("{}", pipewise_core::schema::markdown_reference());
            } else {
                for e in Entity::ALL {
                    let f: Vec<&str> = e.fields().iter().map(|f| f.name).collect();
                    println!("{:<22} {}", e.table(), f.join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(args) => {
            let mut store = open(&cli.db)?;
            let results = predict_cmd::train(
                &mut store,
                &predict_cmd::TrainArgs {
                    truth: args.truth.clone(),
                    learner: args.learner,
                    budget: args.budget,
                    horizon_days: args.horizon_days,
                    monotone: !args.no_monotone,
                    training_data: args.training_data.clone(),
                },
                args.json,
            )?;
            if args.json {
                let v: Vec<serde_json::Value> =
                    results
                        .trained
                        .iter()
                        .map(|(t, v)| serde_json::json!({"version": v, "report": t.report}))
                        .chain(results.skipped.iter().map(
                            |(kind, why)| serde_json::json!({"kind": kind, "cannot_judge": why}),
                        ))
                        .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", predict_cmd::train_text(&results, &cli.db));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(args) if args.what == ScoreWhat::Leads => {
            model_cmd::score_leads(&cli.db, &args)
        }
        Command::Score(args) => predict_cmd::score_cmd(&cli.db, &args),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Serve(args) => access_cmd::serve(&cli.db, &args),
        Command::Token(cmd) => access_cmd::token(&cli.db, &cmd),
        Command::User(cmd) => access_cmd::user(&cli.db, &cmd),
        Command::Audit(args) => access_cmd::audit(&cli.db, &args),
        Command::Erase(args) => access_cmd::erase(&cli.db, &args),
        Command::Retention(cmd) => access_cmd::retention(&cli.db, &cmd),
        Command::Pseudonym(cmd) => access_cmd::pseudonym(&cli.db, &cmd),
        Command::Db(cmd) => access_cmd::db(&cli.db, &cmd),
        Command::Forecast(args) => forecast_cmd::forecast_cmd(&cli.db, args),
        Command::Backtest(cmd) => forecast_cmd::backtest_cmd(&cli.db, cmd),
        Command::Bench(cmd) => forecast_cmd::bench_cmd(cmd),
        Command::Reps(cmd) => stage_cmd::reps(&cli.db, cmd),
        Command::Pipeline(cmd) => stage_cmd::pipeline(&cli.db, cmd),
        Command::Coach(a) => coach_cmd::coach(&cli.db, a),
        Command::Roi(a) => coach_cmd::roi(&cli.db, a),
        Command::Messages(cmd) => messages_cmd::messages(&cli.db, &cmd),
        Command::Actions(a) => actions_cmd::actions(&cli.db, &a),
        Command::Adherence(a) => actions_cmd::adherence(&cli.db, &a),
        Command::Comp(cmd) => comp_cmd::comp(&cli.db, &cmd),
        Command::Fairness(a) => fairness_cmd::run(&cli.db, &a),
        Command::Monitor(a) => monitor_cmd::run(&cli.db, &a),
        Command::Calls(cmd) => coach_cmd::calls(&cli.db, cmd),
        Command::Explain {
            opportunity_id,
            as_of,
            model,
            json,
        } => predict_cmd::explain_cmd(&cli.db, &opportunity_id, as_of.as_deref(), &model, json),
        Command::Models {
            card,
            activate,
            json,
        } => predict_cmd::models_cmd(&cli.db, card.as_deref(), activate.as_deref(), json),
        Command::Leads(cmd) => leads_cmd::leads(&cli.db, cmd),
        Command::Territories(cmd) => territory_cmd::territories(&cli.db, cmd),
        Command::Accounts(cmd) => accounts_cmd::accounts(&cli.db, cmd),
        Command::Cadences(args) => leads_cmd::cadences(args),
        Command::Simulate(args) => {
            let cfg = args.config()?;
            let mut policies = lead_policies(&args, &cfg)?;
            if args.messages == MessagesArg::Bandit {
                policies.messages =
                    Some(Box::new(pipewise_engines::bandit::SimBandit::new(cfg.seed)));
            }
            let bar = output::FractionBar::new(!args.json, "simulating");
            let summary =
                pipewise_sim::simulate_with(&cfg, policies, &args.out, &mut |f| bar.set(f))?;
            bar.finish();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", output::sim_text(&summary));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            out,
            data,
            maven,
            seed,
            serve,
            addr,
            json,
        } => {
            let code = match maven {
                Some(dir) => demo_maven(&out, dir, json)?,
                None => demo(&out, &data, seed, json)?,
            };
            if serve && code == ExitCode::SUCCESS {
                access_cmd::demo_serve(&out, addr)
            } else {
                Ok(code)
            }
        }
    }
}

/// The lead policies of `simulate --routing/--cadence/--policy-start`.
fn lead_policies(
    args: &SimArgs,
    cfg: &pipewise_sim::Config,
) -> Result<pipewise_sim::policy::Policies> {
    use pipewise_sim::policy::{Cadence, Policies, Routing};
    let own = args.routing == RoutingArg::Territory
        && args.cadence == CadenceArg::Rep
        && args.focus.is_none();
    let start = match &args.policy_start {
        Some(s) => pipewise_sim::time::parse_date(s)
            .with_context(|| format!("--policy-start {s:?}: expected a date such as 2025-07-01"))?,
        None if own => return Ok(Policies::default()),
        None => cfg.end() - 183 * pipewise_sim::time::DAY,
    };
    if start <= cfg.start || start >= cfg.end() {
        bail!(
            "--policy-start {}: must fall inside the simulated window ({} to {})",
            pipewise_sim::time::date(start),
            pipewise_sim::time::date(cfg.start),
            pipewise_sim::time::date(cfg.end() - pipewise_sim::time::DAY)
        );
    }
    let want_routing = matches!(
        args.routing,
        RoutingArg::Pipewise | RoutingArg::PipewiseBatch
    );
    let want_cadence = args.cadence == CadenceArg::Pipewise;
    let mut learned = None;
    let want_focus = args.focus.is_some_and(|f| f != FocusArg::None);
    anyhow::ensure!(
        args.focus_per_week.is_finite() && args.focus_per_week > 0.0 && args.focus_per_week <= 40.0,
        "--focus-per-week {}: expected meetings a week, above 0 and at most 40",
        args.focus_per_week
    );
    let mut focus = None;
    if want_routing || want_cadence || want_focus {
        // The org's history under its own rules: the same draws as the run
        // itself up to the policy start (common random numbers).
        let tmp = tempfile::tempdir()?;
        let bar = output::FractionBar::new(!args.json, "simulating the history to learn from");
        let views = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let from = start - 12 * 7 * pipewise_sim::time::DAY;
        let history = Policies {
            // Keyed as the run itself will be, with no meeting.
            focus: args.focus.is_some().then(no_focus),
            start,
            observer: want_focus.then(|| {
                Box::new(ViewsBefore {
                    views: views.clone(),
                    from,
                    to: start,
                }) as Box<dyn pipewise_sim::policy::DealObserver>
            }),
            ..Policies::default()
        };
        pipewise_sim::simulate_with(cfg, history, tmp.path(), &mut |f| bar.set(f))?;
        bar.finish();
        if want_focus {
            let views = views.borrow();
            let refs: Vec<&pipewise_sim::policy::DealView> = views.iter().collect();
            let reps: std::collections::HashSet<&str> =
                views.iter().map(|v| v.rep_id.as_str()).collect();
            let rep_weeks = reps.len() as f64 * 12.0;
            let mut own_scorer = pipewise_engines::actions::OwnPriorities;
            let own_scores: Vec<f64> = refs
                .iter()
                .map(|v| pipewise_sim::policy::DealScorer::score(&mut own_scorer, v))
                .collect();
            let own_threshold = pipewise_engines::actions::focus_threshold(
                &own_scores,
                rep_weeks,
                args.focus_per_week,
            );
            let pipewise = if matches!(
                args.focus,
                Some(FocusArg::Pipewise | FocusArg::KnownEffect | FocusArg::Oracle)
            ) {
                let (mut scorer, line) = pipewise_app::actions::learn_focus(
                    tmp.path(),
                    start,
                    &output::Bar::new(!args.json),
                )?;
                use pipewise_engines::actions::FocusValuation;
                scorer.valuation = match args.focus {
                    Some(FocusArg::KnownEffect) => FocusValuation::KnownEffect,
                    Some(FocusArg::Oracle) => FocusValuation::Oracle,
                    _ => FocusValuation::Assumed,
                };
                match scorer.valuation {
                    FocusValuation::KnownEffect => eprintln!(
                        "{line}; valued instead with the simulator's true effect ({:+.2} log-odds, twice on a deal with no customer response in {} days)",
                        pipewise_sim::policy::FOCUS_GAIN,
                        pipewise_sim::policy::STALLED_DAYS
                    ),
                    FocusValuation::Oracle => eprintln!(
                        "oracle: each deal week valued by the simulator's hidden value of a meeting (the ceiling of any policy with the same time)"
                    ),
                    FocusValuation::Assumed => eprintln!("{line}"),
                }
                Some(scorer)
            } else {
                None
            };
            let list_threshold = match &pipewise {
                Some(p) => pipewise_engines::actions::focus_threshold(
                    &p.values(&refs)?,
                    rep_weeks,
                    args.focus_per_week,
                ),
                None => f64::INFINITY,
            };
            drop(views);
            focus = Some(calibrate_focus(
                cfg,
                start,
                FocusSetup {
                    pipewise,
                    own_threshold,
                    list_threshold,
                    per_week: args.focus_per_week,
                    follow_all: args.adherence == AdherenceArg::Full,
                },
                args.json,
            )?);
        }
        if want_routing || want_cadence {
            let l = pipewise_app::leads::learn_lead_policies(
                tmp.path(),
                start,
                want_routing,
                want_cadence,
                &output::Bar::new(!args.json),
            )?;
            for line in &l.summary {
                eprintln!("{line}");
            }
            learned = Some(l);
        }
    }
    let routing = match args.routing {
        RoutingArg::Territory => Routing::Territory,
        RoutingArg::RoundRobin => Routing::RoundRobin,
        RoutingArg::Pipewise | RoutingArg::PipewiseBatch => Routing::Policy(Box::new(
            learned
                .as_mut()
                .and_then(|l| l.router.take())
                .context("no router")?,
        )),
    };
    let cadence = match args.cadence {
        CadenceArg::Rep => Cadence::Rep,
        CadenceArg::Pipewise => Cadence::Policy(Box::new(
            learned
                .as_mut()
                .and_then(|l| l.cadence.take())
                .context("no cadence")?,
        )),
    };
    if args.focus == Some(FocusArg::None) {
        focus = Some(no_focus());
    }
    Ok(Policies {
        routing,
        cadence,
        focus,
        observer: None,
        start,
        batch: args.routing == RoutingArg::PipewiseBatch,
        messages: None,
    })
}

/// A focus policy that holds no meeting: the run is keyed as the focus
/// runs are (customers' deals by their parent), for comparing with them.
fn no_focus() -> pipewise_sim::policy::Focus {
    pipewise_sim::policy::Focus {
        list: None,
        own: (
            Box::new(pipewise_engines::actions::OwnPriorities),
            f64::INFINITY,
        ),
        cap: 0,
        follow_all: false,
    }
}

/// What a focus policy is made of, before its thresholds are final.
struct FocusSetup {
    pipewise: Option<pipewise_engines::actions::PipewiseFocus>,
    own_threshold: f64,
    list_threshold: f64,
    per_week: f64,
    follow_all: bool,
}

impl FocusSetup {
    fn focus(&self) -> pipewise_sim::policy::Focus {
        pipewise_sim::policy::Focus {
            list: self.pipewise.clone().map(|p| {
                (
                    Box::new(p) as Box<dyn pipewise_sim::policy::DealScorer>,
                    self.list_threshold,
                )
            }),
            own: (
                Box::new(pipewise_engines::actions::OwnPriorities),
                self.own_threshold,
            ),
            cap: (2.0 * self.per_week).ceil() as u32,
            follow_all: self.follow_all,
        }
    }
}

/// Sets the focus thresholds so that, from the policy start, each policy
/// picks `per_week` deal weeks per rep a week: the same time budget for
/// every policy. Starting from the thresholds set on the 12 weeks before
/// the start, the run is simulated (into a scratch directory) twice, each
/// time setting the thresholds from the scores of the deal weeks after the
/// start that run showed. Reads no outcome.
fn calibrate_focus(
    cfg: &pipewise_sim::Config,
    start: i64,
    mut setup: FocusSetup,
    json: bool,
) -> Result<pipewise_sim::policy::Focus> {
    use pipewise_sim::policy::{DealScorer, Policies};
    let weeks = (cfg.end() - start) as f64 / (7 * pipewise_sim::time::DAY) as f64;
    for round in 1..=2 {
        let tmp = tempfile::tempdir()?;
        let views = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let policies = Policies {
            focus: Some(setup.focus()),
            observer: Some(Box::new(ViewsBefore {
                views: views.clone(),
                from: start,
                to: i64::MAX,
            })),
            start,
            ..Policies::default()
        };
        let bar =
            output::FractionBar::new(!json, &format!("setting the focus budget ({round} of 2)"));
        pipewise_sim::simulate_with(cfg, policies, tmp.path(), &mut |f| bar.set(f))?;
        bar.finish();
        let views = views.borrow();
        let refs: Vec<&pipewise_sim::policy::DealView> =
            views.iter().filter(|v| v.at < cfg.end()).collect();
        let reps: std::collections::HashSet<&str> =
            refs.iter().map(|v| v.rep_id.as_str()).collect();
        let rep_weeks = reps.len() as f64 * weeks;
        let mut own = pipewise_engines::actions::OwnPriorities;
        let own_scores: Vec<f64> = refs.iter().map(|v| own.score(v)).collect();
        setup.own_threshold =
            pipewise_engines::actions::focus_threshold(&own_scores, rep_weeks, setup.per_week);
        if let Some(p) = &setup.pipewise {
            setup.list_threshold = pipewise_engines::actions::focus_threshold(
                &p.values(&refs)?,
                rep_weeks,
                setup.per_week,
            );
        }
        if round == 2 {
            eprintln!(
                "focus budget: {} meetings a rep a week over {} deal weeks of {} reps after the start",
                setup.per_week,
                refs.len(),
                reps.len()
            );
        }
    }
    Ok(setup.focus())
}

/// Keeps the deal views of weeks in `[from, to)` (the focus thresholds'
/// calibration window).
struct ViewsBefore {
    views: std::rc::Rc<std::cell::RefCell<Vec<pipewise_sim::policy::DealView>>>,
    from: i64,
    to: i64,
}

impl pipewise_sim::policy::DealObserver for ViewsBefore {
    fn observe(&mut self, deal: &pipewise_sim::policy::DealView) {
        if deal.at >= self.from && deal.at < self.to {
            self.views.borrow_mut().push(deal.clone());
        }
    }
}

/// The demo's lead-policy comparison: the last six months' leads of the demo
/// org (the same leads, common random numbers) under the org's own rules,
/// under pipewise routing and under the pipewise cadence.
#[derive(serde::Serialize)]
struct LeadLift {
    /// The policy start (YYYY-MM-DD).
    start: String,
    leads: u64,
    /// Conversion rates (0-1) of the leads from the start on.
    territory: f64,
    pipewise_routing: f64,
    pipewise_cadence: f64,
}

fn lead_lift(cfg: &pipewise_sim::Config, history: &Path, json: bool) -> Result<LeadLift> {
    use pipewise_sim::policy::{Cadence, Policies, Routing};
    let start = cfg.end() - 183 * pipewise_sim::time::DAY;
    let mut learned = pipewise_app::leads::learn_lead_policies(
        history,
        start,
        true,
        true,
        &output::Bar::new(!json),
    )?;
    let runs = [
        Policies {
            routing: Routing::Territory,
            cadence: Cadence::Rep,
            start,
            batch: false,
            ..Policies::default()
        },
        Policies {
            routing: Routing::Policy(Box::new(learned.router.take().context("no router")?)),
            cadence: Cadence::Rep,
            start,
            batch: false,
            ..Policies::default()
        },
        Policies {
            routing: Routing::Territory,
            cadence: Cadence::Policy(Box::new(learned.cadence.take().context("no cadence")?)),
            start,
            batch: false,
            ..Policies::default()
        },
    ];
    let mut rates = Vec::new();
    let mut leads = 0;
    for (policies, what) in
        runs.into_iter()
            .zip(["own rules", "pipewise routing", "pipewise cadence"])
    {
        let tmp = tempfile::tempdir()?;
        let bar =
            output::FractionBar::new(!json, &format!("the last six months' leads under {what}"));
        let s = pipewise_sim::simulate_with(cfg, policies, tmp.path(), &mut |f| bar.set(f))?;
        bar.finish();
        let p = s.policy.context("no policy period")?;
        leads = p.leads;
        rates.push(p.conversion_rate);
    }
    Ok(LeadLift {
        start: pipewise_sim::time::date(start),
        leads,
        territory: rates[0],
        pipewise_routing: rates[1],
        pipewise_cadence: rates[2],
    })
}

fn open(db: &Path) -> Result<SqliteStore> {
    Ok(SqliteStore::open(db)?)
}

/// Runs an import; under `--json`, a failure that stops it before its report
/// (an unreadable mapping, a missing file, a store error) is printed as a JSON
/// report too, so a script always gets JSON.
fn import_or_json_error(db: &Path, cmd: ImportCmd) -> Result<ExitCode> {
    let json = match &cmd {
        ImportCmd::Dir { common, .. }
        | ImportCmd::Maven { common, .. }
        | ImportCmd::Csv { common, .. }
        | ImportCmd::Jsonl { common, .. }
        | ImportCmd::Vtt { common, .. } => common.json,
    };
    match import(db, cmd) {
        Err(e) if json => {
            let report = serde_json::json!({
                "committed": false,
                "errors": [{ "file": null, "line": 0, "column": null, "message": format!("{e:#}") }],
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!("error: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        other => other,
    }
}

fn import(db: &Path, cmd: ImportCmd) -> Result<ExitCode> {
    let (kind, sources, common) = match cmd {
        ImportCmd::Dir {
            dir,
            mapping,
            common,
        } => {
            // The simulator's recommendation log is not an entity: say how
            // it is stored rather than pass it over in silence.
            let log = dir.join("action_recommendations.csv");
            if mapping.is_none() && log.is_file() {
                eprintln!(
                    "note: {} is a log of next-best-action recommendations, not imported with the records: store it with `pipewise --db {} actions import-log {}`",
                    log.display(),
                    db.display(),
                    log.display()
                );
            }
            let m = mapping.as_deref().map(Mapping::load).transpose()?;
            let kind = if m.is_some() { "mapped" } else { "canonical" };
            (
                kind,
                pipewise_ingest::sources_in_dir(&dir, m.as_ref())?,
                common,
            )
        }
        ImportCmd::Maven { dir, common } => (
            "maven",
            pipewise_ingest::sources_in_dir(&dir, Some(&Mapping::maven()))?,
            common,
        ),
        ImportCmd::Csv {
            files,
            mapping,
            entity,
            common,
        } => {
            let mut sources = Vec::new();
            match mapping {
                Some(mp) => {
                    let m = Mapping::load(&mp)?;
                    for f in &files {
                        let idx = if m.files.len() == 1 {
                            0
                        } else {
                            let name = f
                                .file_name()
                                .map(|s| s.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            m.files.iter().position(|fm| fm.name.as_deref() == Some(name.as_str())).with_context(|| {
                                format!("mapping {} has several file sections and none is named {name}", mp.display())
                            })?
                        };
                        sources.push(Source::Csv {
                            path: f.clone(),
                            mapping: m.clone(),
                            file: idx,
                            canonical: false,
                        });
                    }
                }
                None => {
                    for f in &files {
                        let e = entity_of_file(f, entity.as_deref())?;
                        sources.push(Source::Csv {
                            path: f.clone(),
                            mapping: Mapping::canonical(e),
                            file: 0,
                            canonical: true,
                        });
                    }
                }
            }
            ("csv", sources, common)
        }
        ImportCmd::Jsonl {
            files,
            entity,
            common,
        } => {
            let mut sources = Vec::new();
            for f in &files {
                sources.push(Source::Jsonl {
                    path: f.clone(),
                    entity: entity_of_file(f, entity.as_deref())?,
                });
            }
            ("jsonl", sources, common)
        }
        ImportCmd::Vtt {
            files,
            opportunity,
            lead,
            rep,
            id,
            started_at,
            title,
            common,
        } => {
            if id.is_some() && files.len() > 1 {
                bail!(
                    "--id names one conversation; give one file, or leave --id out to use each file's name"
                );
            }
            let mut sources = Vec::new();
            for f in files {
                let link = TranscriptLink {
                    id: id.clone(),
                    opportunity_id: opportunity.clone(),
                    lead_id: lead.clone(),
                    user_id: rep.clone(),
                    started_at: started_at.clone(),
                    title: title.clone(),
                    ..Default::default()
                }
                .with_sidecar(&f)?;
                sources.push(Source::Vtt { path: f, link });
            }
            ("vtt", sources, common)
        }
    };
    let as_of = match &common.as_of {
        None => now(),
        Some(s) => match pipewise_core::value::parse_datetime(s, &[]) {
            Some(t) => pipewise_core::value::format_instant(t),
            None => {
                bail!("--as-of {s:?}: expected a date or date-time such as 2025-06-30T18:00:00Z")
            }
        },
    };
    let opts = ImportOptions {
        dry_run: common.dry_run,
        max_errors: common.max_errors,
        as_of,
        kind: kind.to_string(),
        encoding: common.encoding.clone(),
    };
    let mut store = open(db)?;
    let progress = output::Bar::new(!common.json);
    let report = pipewise_ingest::run_import(&mut store, &sources, &opts, &progress)?;
    finish_import(db, &report, common.json)
}

fn finish_import(db: &Path, report: &ImportReport, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", output::report_text(&db.display().to_string(), report));
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        let files: std::collections::BTreeSet<&str> =
            report.errors.iter().map(|e| e.file.as_str()).collect();
        eprintln!(
            "error: import failed with {}{} error{} in {}; the database is unchanged",
            report.errors.len(),
            if report.errors_truncated { "+" } else { "" },
            if report.errors.len() == 1 { "" } else { "s" },
            files.into_iter().collect::<Vec<_>>().join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `pipewise currency`: shows (and with `--corporate`, sets) how amounts are
/// brought into one currency.
fn currency(db: &Path, corporate: Option<&str>, json: bool) -> Result<ExitCode> {
    let mut store = open(db)?;
    if let Some(code) = corporate {
        let v = pipewise_core::parse_cell(&pipewise_core::FieldType::Currency, code, &[])
            .map_err(|e| anyhow::anyhow!("--corporate {code:?}: expected {}", e.expected))?;
        let code = v.as_str().unwrap_or_default().to_string();
        let stamped = store.set_corporate_currency(&code)?;
        if stamped > 0 {
            eprintln!(
                "{stamped} deals without a currency were in the previous corporate currency, and now name it"
            );
        }
    }
    let crm = store.load_crm()?;
    let by = store.amounts_by_currency()?;
    let rates = store.exchange_rates()?;
    let setting = store.setting(pipewise_store::read::CORPORATE_CURRENCY)?;
    // What the deals of each recorded currency amount to in the corporate one.
    let mut in_corporate: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    for o in &crm.opportunities {
        if let Some(a) = o.amount {
            let e = in_corporate
                .entry(o.currency.clone().unwrap_or_else(|| "(none)".into()))
                .or_default();
            e.0 += 1;
            e.1 += a;
        }
    }
    if json {
        let v = serde_json::json!({
            "corporate_currency_setting": setting,
            "corporate": crm.currencies.corporate,
            "amounts_by_currency": by.iter().map(|(c, n, a)| serde_json::json!({"currency": c, "deals": n, "amount": a})).collect::<Vec<_>>(),
            "exchange_rates": rates.iter().map(|(c, f, r)| serde_json::json!({"currency": c, "valid_from": f, "rate": r})).collect::<Vec<_>>(),
            "converted": crm.currencies.converted,
            "in_corporate_currency": in_corporate.iter().map(|(c, (n, a))| serde_json::json!({"recorded_currency": c, "deals": n, "amount": a})).collect::<Vec<_>>(),
            "unconverted": crm.currencies.unconverted,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!(
            "{}",
            output::currency_text(&setting, &crm.currencies, &by, &rates, &in_corporate)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fresh_db(out: &Path) -> Result<SqliteStore> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", out.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot replace {}", p.display()))?;
        }
    }
    open(out)
}

/// The demo: a simulated org of 40 reps over 24 months, imported into a fresh
/// database, summarised.
fn demo(out: &Path, data: &Path, seed: u64, json: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let cfg = pipewise_sim::Config {
        seed,
        ..pipewise_sim::Config::default()
    };
    if data.exists() {
        std::fs::remove_dir_all(data)
            .with_context(|| format!("cannot replace {}", data.display()))?;
    }
    let bar = output::FractionBar::new(!json, "simulating 40 reps over 24 months");
    let summary = pipewise_sim::simulate(&cfg, data, &mut |f| bar.set(f))?;
    bar.finish();
    let simulated = started.elapsed();
    let mut store = fresh_db(out)?;
    let sources = pipewise_ingest::sources_in_dir(data, None)?;
    let opts = ImportOptions {
        dry_run: false,
        max_errors: 100,
        as_of: now(),
        kind: "canonical".into(),
        encoding: None,
    };
    let report =
        pipewise_ingest::run_import(&mut store, &sources, &opts, &output::Bar::new(!json))?;
    if !report.ok() {
        return finish_import(out, &report, json);
    }
    let stats = store.stats()?;
    // Train the win and slip models (with the oracle for comparison) and score the open deals.
    let trained = predict_cmd::train(
        &mut store,
        &predict_cmd::TrainArgs {
            truth: Some(data.join("ground_truth.json")),
            learner: Learner::Hist,
            budget: pipewise_models::FitOptions::default().budget,
            horizon_days: 120,
            monotone: true,
            training_data: None,
        },
        json,
    )?;
    let bars = output::Bars::new(!json);
    let run = pipewise_app::stage::run_stage(predict_cmd::load(&store)?, &bars)?;
    let crm = &run.data;
    let win = trained
        .model(pipewise_engines::predict::Target::Win)
        .context("the win model was not trained")?;
    let slip = trained.model(pipewise_engines::predict::Target::Slip);
    let scored = pipewise_engines::predict::score(crm, crm.end, win, slip, 4)?;
    // Entered stage vs evidence: the open deals and each rep's bias, checked
    // against the simulator's truth.
    let truth = pipewise_engines::truth::Truth::load(&data.join("ground_truth.json"))?;
    let stage = pipewise_app::stage::inspection(&run, crm.end, Some((win, slip)))?;
    let bias = pipewise_engines::stage::rep_bias(crm, &run.snap, &run.cf, &run.opts);
    let validation = pipewise_engines::stage::validate(crm, &run.snap, &bias, &truth, &run.opts)?;
    // The next quarter's bookings with their range (the stage run's weekly
    // snapshots are the forecast's training rows too).
    let (fc, moved) = pipewise_app::forecasting::forecast_at(
        crm,
        &run.snap,
        None,
        pipewise_engines::forecast::RollUp::Company,
        crm.end,
        10_000,
        &Default::default(),
        pipewise_app::book::active_model(&store, "win")?.map(|(m, _, version)| (m, version)),
        &bars,
    )?;
    // Coaching: every rep's plan, a headline per team, checked against the latent skills.
    let coach_opts = pipewise_engines::coach::CoachOptions::default();
    let coaching = pipewise_app::coaching::run_coach(
        std::sync::Arc::new(store.load_crm()?),
        slip.map(|s| (win, s)),
        &coach_opts,
        &pipewise_features::conversation::Trackers::default_set(),
    )?;
    let all: Vec<usize> = (0..coaching.profiles.reps.len()).collect();
    let plans = pipewise_app::coaching::plans_for(
        &coaching,
        &all,
        &pipewise_engines::coach_plan::Catalogue::default_set(),
        &coach_opts,
        &std::collections::HashMap::new(),
    );
    let headlines = pipewise_app::coaching::team_headlines(&plans);
    let coach_validation =
        pipewise_engines::coach::validate(&coaching.profiles, &coaching.impact, &truth.rep_skills);
    // The lead conversion model (for the leads' scores), fitted on the leads
    // whose outcome is known.
    let lead_model =
        pipewise_app::leads::fit_and_register(&mut store, &coaching.crm, &|_: &str| {})?;
    let lift = lead_lift(&cfg, data, json)?;
    if json {
        let reports: Vec<_> = trained
            .trained
            .iter()
            .map(|(t, v)| serde_json::json!({"version": v, "report": t.report}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"simulation": summary, "import": report, "stats": stats, "models": reports, "scores": scored,
                    "stage": {"deals": stage, "rep_bias": bias, "validation": validation},
                    "forecast": {"forecast": fc, "moved": moved},
                    "coaching": {"teams": headlines, "validation": coach_validation},
                    "lead_model": lead_model.as_ref().map(|m| serde_json::json!({"version": m.version, "validation": m.metrics})),
                    "lead_policies": lift})
            )?
        );
    } else {
        println!(
            "pipewise demo: a simulated sales org (seed {seed}) in {}, imported into {}, models trained and everything below computed in {:.1}s\n",
            data.display(),
            out.display(),
            started.elapsed().as_secs_f64()
        );
        print!("{}", output::org_text(&stats));
        println!();
        print!("{}", output::pipeline_text(&stats));
        println!();
        print!("{}", output::leads_text(&stats));
        println!();
        for (t, _) in &trained.trained {
            let r = &t.report;
            println!(
                "{} model on the test window {} to {} ({} snapshots of open deals):",
                r.kind, r.test.from, r.test.to, r.test.rows
            );
            print!("{}", predict_cmd::metrics_table(r, false));
            println!();
        }
        print!("{}", predict_cmd::riskiest_text(crm, &scored, crm.end, 10));
        println!(
            "\nStage discrepancies: the entered stage against the stage the deal's evidence supports."
        );
        print!("{}", stage_cmd::discrepancy_text(&stage, 5));
        println!();
        print!("{}", stage_cmd::bias_text(&run, &bias, 10));
        print!("{}", stage_cmd::validation_text(&validation));
        println!();
        print!("{}", forecast_cmd::forecast_text(&fc, &moved, 5));
        println!();
        print!("{}", coach_cmd::headlines_text(&headlines));
        println!(
            "  Against the latent skills: {}",
            pipewise_app::report::validation_sentence(&coach_validation)
        );
        if let Some(m) = &lead_model {
            let v = &m.metrics;
            println!(
                "\nLead conversion model v{} ({}): ROC-AUC {:.3}, lift in the top decile {:.2}x; open leads are scored when served (`pipewise score leads` writes them to a CSV).",
                m.version,
                v["scheme"].as_str().unwrap_or("validated"),
                v["metrics"]["roc_auc"].as_f64().unwrap_or(f64::NAN),
                v["metrics"]["lift_top_decile"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let gain = |x: f64| (x / lift.territory - 1.0) * 100.0;
        println!(
            "\nLead routing and follow-up, measured on the same {} leads from {} (the simulator's hidden outcomes):\n  \
             the org's own rules convert {:.1}%; pipewise routing {:.1}% ({:+.0}%); the pipewise cadence {:.1}% ({:+.0}%).\n  \
             Try `pipewise simulate --routing pipewise --cadence pipewise`, `pipewise leads route`, `pipewise leads draft LEAD_ID`.",
            output::thousands(lift.leads),
            lift.start,
            lift.territory * 100.0,
            lift.pipewise_routing * 100.0,
            gain(lift.pipewise_routing),
            lift.pipewise_cadence * 100.0,
            gain(lift.pipewise_cadence)
        );
        println!(
            "\nSimulated in {:.1}s; the hidden truth (skills, biases, true win probabilities) is in {}.",
            simulated.as_secs_f64(),
            data.join("ground_truth.json").display()
        );
        println!(
            "Next: `pipewise --db {} explain DEAL_ID`, `forecast`, `backtest forecast`, `pipeline inspect`, `reps bias`, `coach --rep NAME`, `calls analyze`, `models`, `score`, or import your own export (see docs/data-format.md).",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The Maven CRM export into a fresh database, summarised.
fn demo_maven(out: &Path, dir: PathBuf, json: bool) -> Result<ExitCode> {
    let mut store = fresh_db(out)?;
    let sources = pipewise_ingest::sources_in_dir(&dir, Some(&Mapping::maven()))?;
    let opts = ImportOptions {
        dry_run: false,
        max_errors: 100,
        as_of: now(),
        kind: "maven".into(),
        encoding: None,
    };
    let report =
        pipewise_ingest::run_import(&mut store, &sources, &opts, &output::Bar::new(!json))?;
    if !report.ok() {
        return finish_import(out, &report, json);
    }
    let stats = store.stats()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"import": report, "stats": stats}))?
        );
    } else {
        println!(
            "pipewise demo: the Maven CRM export ({}) loaded into {}\n",
            dir.display(),
            out.display()
        );
        print!(
            "{}",
            output::report_text(&out.display().to_string(), &report)
        );
        println!();
        print!("{}", output::stats_text(&out.display().to_string(), &stats));
        println!();
        print!("{}", output::pipeline_text(&stats));
        println!(
            "\nNext: `pipewise --db {} stats --json`, or import your own export with a mapping (see docs/data-format.md).",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
