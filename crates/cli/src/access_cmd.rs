//! `pipewise serve`, `token`, `user` and `audit`: parse, call the use cases, present.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use pipewise_app::auth;
use pipewise_app::scope::Directory;
use pipewise_store::access::NewAudit;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Log lines as text or JSON (standard error; level from PIPEWISE_LOG).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Seconds before a request is answered 408.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Mark the session cookie Secure on every response: the server is
    /// reached only over HTTPS, through a proxy that terminates TLS. (Without
    /// it, responses to requests forwarded with `X-Forwarded-Proto: https`
    /// get a Secure cookie.)
    #[arg(long)]
    pub secure_cookies: bool,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    pub body_limit_mib: usize,
    /// The speed-to-lead SLA in working minutes (the owner's hours and time
    /// zone; Monday-Friday 08:00-18:00 UTC without them): a lead waiting
    /// longer gives a `lead.sla_breached` event, and a lead whose owner is
    /// out of office is reassigned at once.
    #[arg(long, default_value_t = 5.0)]
    pub sla_minutes: f64,
    /// Seconds between two checks of the waiting leads against the SLA.
    #[arg(long, default_value_t = 60)]
    pub sla_check_secs: u64,
    /// Keep a lead with its rep past twice the SLA (default: give it to the
    /// rep the router recommends among the others, a `lead.reassigned` event).
    #[arg(long)]
    pub no_reassign: bool,
    /// Post each speed-to-lead event as JSON to this URL (http://; e.g. a
    /// chat or e-mail bridge that tells the rep and their manager).
    #[arg(long)]
    pub lead_webhook: Option<String>,
    /// An OpenAI-compatible chat endpoint of a local language model for
    /// first-reply drafts (the template is the fallback).
    #[arg(long, env = "PIPEWISE_LLM_URL")]
    pub llm_url: Option<String>,
    /// The model name to ask for.
    #[arg(long, env = "PIPEWISE_LLM_MODEL", default_value = "local")]
    pub llm_model: String,
    /// A directory of incentive plans (`*.toml`, docs/comp.md) for
    /// `/api/v1/comp` and the dashboard's pay page.
    #[arg(long)]
    pub plans: Option<std::path::PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

pub fn serve(db: &Path, args: &ServeArgs) -> Result<ExitCode> {
    if args.print_openapi {
        println!(
            "{}",
            serde_json::to_string_pretty(&pipewise_server::openapi())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !(args.sla_minutes > 0.0 && args.sla_minutes <= 3000.0) {
        bail!(
            "--sla-minutes {}: expected business minutes from 0.1 to 3000",
            args.sla_minutes
        );
    }
    if let Some(u) = &args.lead_webhook
        && !u.starts_with("http://")
    {
        bail!("--lead-webhook {u}: expected an http:// URL (TLS is left to a local relay)");
    }
    if !db.exists() {
        bail!(
            "{}: no such database (import data first, or run `pipewise demo`)",
            db.display()
        );
    }
    let opts = pipewise_server::Options {
        addr: args.addr,
        json_logs: args.log_format == LogFormat::Json,
        request_timeout: Duration::from_secs(args.timeout_secs.max(1)),
        body_limit: args.body_limit_mib.max(1) << 20,
        secure_cookies: args.secure_cookies,
        sla_minutes: args.sla_minutes,
        sla_check: Duration::from_secs(args.sla_check_secs.max(1)),
        reassign: !args.no_reassign,
        lead_webhook: args.lead_webhook.clone(),
        plans: args.plans.clone(),
        llm: args
            .llm_url
            .clone()
            .map(|url| pipewise_app::leads::LlmOptions {
                url,
                model: args.llm_model.clone(),
                timeout_secs: 30,
            }),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(pipewise_server::Tls {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    pipewise_server::run(db, &opts, |addr| {
        // On standard output, for people and for scripts waiting for it; a
        // closed standard output must not stop the server.
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "pipewise listening on {scheme}://{addr} (database {})",
            db.display()
        );
        let _ = writeln!(
            out,
            "  OpenAPI: {scheme}://{addr}/openapi.json   health: {scheme}://{addr}/health"
        );
        let _ = out.flush();
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Clone)]
pub enum TokenCmd {
    /// Create an API token for a user; it is printed once and stored only as a hash.
    Create {
        /// The user (an id from `pipewise user list`).
        #[arg(long)]
        user: String,
        /// Expire after this many days, 1 or more (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        expires_days: Option<u32>,
        /// What the token is for (e.g. "CRM write-back").
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// The operating-system account running this process, from its real user
/// id (not from `$USER`, which anyone can set): `alice (uid 1000)`.
pub fn os_user() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getpwuid_r writes into the buffers given; the name is
        // read before they go out of scope.
        unsafe {
            let uid = libc::getuid();
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 4096];
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
            if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
                let name = std::ffi::CStr::from_ptr(pwd.pw_name).to_string_lossy();
                return format!("{name} (uid {uid})");
            }
            format!("uid {uid}")
        }
    }
    #[cfg(not(unix))]
    {
        std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into())
    }
}

fn audit_cli(
    store: &mut pipewise_store::SqliteStore,
    action: &str,
    command: &str,
    ids: &[String],
    detail: Option<&str>,
) -> Result<()> {
    let at = auth::now();
    // Run from a terminal: the operating-system account is who did it.
    let os_user = os_user();
    let detail = match detail {
        Some(d) => format!("{d}; by OS user {os_user}"),
        None => format!("by OS user {os_user}"),
    };
    store.append_audit(&NewAudit {
        at: &at,
        user_id: None,
        action,
        route: Some(command),
        ids,
        detail: Some(&detail),
    })?;
    Ok(())
}

/// The database for an access command: it must exist (a mistyped path would
/// otherwise create an empty one).
pub(crate) fn existing(db: &Path) -> Result<pipewise_store::SqliteStore> {
    if !db.exists() {
        bail!(
            "{}: no such database (import data first, or run `pipewise demo`)",
            db.display()
        );
    }
    crate::open(db)
}

pub fn token(db: &Path, cmd: &TokenCmd) -> Result<ExitCode> {
    let mut store = existing(db)?;
    match cmd {
        TokenCmd::Create {
            user,
            expires_days,
            label,
            json,
        } => {
            let dir = Directory::new(store.users()?, store.admins()?);
            let caller = dir.caller(user).with_context(|| {
                format!(
                    "no user with id {user:?} in {} (see `pipewise stats`)",
                    db.display()
                )
            })?;
            let t = auth::create_token(&mut store, user, label.as_deref(), *expires_days)?;
            audit_cli(
                &mut store,
                "token.create",
                "pipewise token create",
                std::slice::from_ref(user),
                Some(&format!("token {}", t.record.id)),
            )?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!("{}", t.token);
                eprintln!(
                    "token {} for {} ({}, role {}){}: shown once, keep it secret; send it as `Authorization: Bearer TOKEN`",
                    t.record.id,
                    caller.name,
                    user,
                    caller.role.name(),
                    t.record
                        .expires_at
                        .as_deref()
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCmd::List { user, json } => {
            let tokens = store.tokens(user.as_deref())?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                println!("no tokens");
            } else {
                println!(
                    "{:>4}  {:<12} {:<21} {:<21} {:<21} label",
                    "id", "user", "created", "expires", "revoked"
                );
                for t in tokens {
                    println!(
                        "{:>4}  {:<12} {:<21} {:<21} {:<21} {}",
                        t.id,
                        t.user_id,
                        t.created_at,
                        t.expires_at.as_deref().unwrap_or("never"),
                        t.revoked_at.as_deref().unwrap_or("-"),
                        t.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        TokenCmd::Revoke { id, json } => {
            if let Some(t) = store.tokens(None)?.into_iter().find(|t| t.id == *id)
                && let Some(at) = &t.revoked_at
            {
                bail!("token {id} of {} was already revoked at {at}", t.user_id);
            }
            let t = store
                .revoke_token(*id, &auth::now())?
                .with_context(|| format!("no token with id {id} (see `pipewise token list`)"))?;
            audit_cli(
                &mut store,
                "token.revoke",
                "pipewise token revoke",
                std::slice::from_ref(&t.user_id),
                Some(&format!("token {id}")),
            )?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
                    "token {id} of {} revoked at {}",
                    t.user_id,
                    t.revoked_at.as_deref().unwrap_or("?")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Clone)]
pub enum UserCmd {
    /// Set a user's password for browser sign-in (argon2id). Reads it from
    /// PIPEWISE_PASSWORD or, failing that, one line of standard input.
    SetPassword {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Grant a user the admin role in pipewise (imports, models, tokens,
    /// audit; sees everything). Kept apart from the imported role.
    GrantAdmin {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a user's admin grant.
    RevokeAdmin {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// The users with their role and how many users each one's scope holds.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn user(db: &Path, cmd: &UserCmd) -> Result<ExitCode> {
    let mut store = existing(db)?;
    let dir = Directory::new(store.users()?, store.admins()?);
    match cmd {
        UserCmd::SetPassword { user, json } => {
            dir.caller(user)
                .with_context(|| format!("no user with id {user:?} in {}", db.display()))?;
            let password = match std::env::var("PIPEWISE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let hash = auth::hash_password(&password)?;
            store.set_password_hash(user, &hash, &auth::now())?;
            audit_cli(
                &mut store,
                "password.set",
                "pipewise user set-password",
                std::slice::from_ref(user),
                None,
            )?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({"user": user, "password_set": true})
                );
            } else {
                println!("password set for {user}");
            }
        }
        UserCmd::GrantAdmin { user, json } | UserCmd::RevokeAdmin { user, json } => {
            let grant = matches!(cmd, UserCmd::GrantAdmin { .. });
            store.set_admin(user, grant, &auth::now())?;
            audit_cli(
                &mut store,
                if grant { "admin.grant" } else { "admin.revoke" },
                if grant {
                    "pipewise user grant-admin"
                } else {
                    "pipewise user revoke-admin"
                },
                std::slice::from_ref(user),
                None,
            )?;
            if *json {
                println!("{}", serde_json::json!({"user": user, "admin": grant}));
            } else if grant {
                println!("{user} is an admin");
            } else {
                println!("{user} is no longer an admin");
            }
        }
        UserCmd::List { json } => {
            let rows: Vec<serde_json::Value> = dir
                .all()
                .iter()
                .filter_map(|u| {
                    let c = dir.caller(&u.id)?;
                    Some(serde_json::json!({
                        "id": u.id, "name": u.name, "role": c.role.name(),
                        "manager_id": u.manager_id,
                        "scope_users": c.scope.users().map(|s| s.len()),
                    }))
                })
                .collect();
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<12} {:<9} {:<12} {:>6}  name",
                    "id", "role", "manager", "scope"
                );
                for r in rows {
                    println!(
                        "{:<12} {:<9} {:<12} {:>6}  {}",
                        r["id"].as_str().unwrap_or(""),
                        r["role"].as_str().unwrap_or(""),
                        r["manager_id"].as_str().unwrap_or("-"),
                        r["scope_users"]
                            .as_u64()
                            .map_or("all".into(), |n| n.to_string()),
                        r["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Clone)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub cmd: Option<AuditCmd>,
    /// Only what this user did.
    #[arg(long)]
    pub user: Option<String>,
    /// Only rows naming this record id.
    #[arg(long)]
    pub id: Option<String>,
    /// Rows, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Clone)]
pub enum AuditCmd {
    /// Check the hash chain: an edited, deleted or inserted row is found.
    /// Exit code 1 when the chain is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub fn audit(db: &Path, args: &AuditArgs) -> Result<ExitCode> {
    let store = existing(db)?;
    if args.limit == 0 {
        bail!("--limit 0: expected a number of rows, 1 or more");
    }
    match &args.cmd {
        Some(AuditCmd::Verify { json }) => {
            let check = store.verify_audit()?;
            let head = store
                .audit(None, None, None, 1)?
                .into_iter()
                .next()
                .map(|a| a.hash);
            if *json {
                let mut v = serde_json::to_value(&check)?;
                v["ok"] = serde_json::Value::Bool(check.broken_at.is_none());
                v["head_hash"] = serde_json::json!(head);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(p) = &check.problem {
                println!("audit log BROKEN: {p} ({} rows read)", check.rows);
            } else {
                println!(
                    "audit log intact: {} rows, each chained to the one before{}{}",
                    check.rows,
                    if check.redacted > 0 {
                        format!(
                            " ({} detail{} blanked by erasures, their links checked)",
                            check.redacted,
                            if check.redacted == 1 { "" } else { "s" }
                        )
                    } else {
                        String::new()
                    },
                    head.map(|h| format!(
                        "; head {h} (record it elsewhere to detect a truncated tail)"
                    ))
                    .unwrap_or_default()
                );
            }
            Ok(if check.broken_at.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            let rows = store.audit(args.user.as_deref(), args.id.as_deref(), None, args.limit)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no audit rows");
            } else {
                for a in rows {
                    println!(
                        "{:>6}  {}  {:<12} {:<14} {:<40} {}",
                        a.seq,
                        a.at,
                        a.user_id.as_deref().unwrap_or("(cli)"),
                        a.action,
                        a.route.as_deref().unwrap_or(""),
                        if a.ids.len() > 4 {
                            format!("{} … ({} ids)", a.ids[..4].join(", "), a.ids.len())
                        } else {
                            a.ids.join(", ")
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A command's outcome under `--json`: the report with `"ok": true`, or
/// `{"ok": false, "error": ...}`, printed, and the exit code to return
/// (`Err`). Without `--json`: the report for the text view (`Ok`), or the
/// error.
fn json_outcome<T: serde::Serialize>(
    done: Result<T>,
    json: bool,
) -> Result<std::result::Result<T, ExitCode>> {
    match done {
        Ok(r) if json => {
            let mut v = serde_json::to_value(&r)?;
            v["ok"] = serde_json::Value::Bool(true);
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(Err(ExitCode::SUCCESS))
        }
        Ok(r) => Ok(Ok(r)),
        Err(e) if json => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": format!("{e:#}")})
            );
            Ok(Err(ExitCode::FAILURE))
        }
        Err(e) => Err(e),
    }
}

#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["contact", "lead", "user"])))]
pub struct EraseArgs {
    /// A contact's id (their leads go with them).
    #[arg(long)]
    pub contact: Option<String>,
    /// A lead's id (with the contact it is linked to: the same person).
    #[arg(long)]
    pub lead: Option<String>,
    /// A user's id (rep, manager, admin).
    #[arg(long)]
    pub user: Option<String>,
    /// Why (kept in the audit log; any mention of the person is removed).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `pipewise erase`: the person removed or anonymised everywhere, the
/// erasure audited without their identity, the file rewritten.
pub fn erase(db: &Path, args: &EraseArgs) -> Result<ExitCode> {
    use pipewise_store::erasure::Subject;
    let subject = match (&args.contact, &args.lead, &args.user) {
        (Some(c), _, _) => Subject::Contact(c),
        (_, Some(l), _) => Subject::Lead(l),
        (_, _, Some(u)) => Subject::User(u),
        _ => bail!("give --contact, --lead or --user"),
    };
    let done = existing(db).and_then(|mut store| {
        pipewise_app::privacy::erase(&mut store, subject, None, args.reason.as_deref())
    });
    let r = match json_outcome(done, args.json)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    {
        println!(
            "Erased a {}: {}.",
            r.subject,
            if r.changed.is_empty() {
                "nothing held about them".to_string()
            } else {
                r.changed
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        println!(
            "Audit row {} records it without their identity; {} earlier audit detail{} that named them {} blanked.",
            r.audit_seq,
            r.audit_rows_blanked,
            if r.audit_rows_blanked == 1 { "" } else { "s" },
            if r.audit_rows_blanked == 1 {
                "is"
            } else {
                "are"
            }
        );
        if r.models_marked.is_empty() {
            println!("No model was trained on their data.");
        } else {
            println!(
                "Marked for retraining (trained on their data): {}.",
                r.models_marked.join(", ")
            );
        }
        println!("The database file was rewritten (VACUUM): no erased value is left in it.");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Clone)]
pub enum RetentionCmd {
    /// Apply a retention policy: transcripts and unconverted leads past
    /// their age lose their personal data, logged in the audit log.
    Apply(RetentionArgs),
}

#[derive(Args, Clone)]
pub struct RetentionArgs {
    /// A policy file (TOML: `transcripts_days = 365`,
    /// `unconverted_leads_days = 730`); the options below override it.
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    /// Calls older than this many days lose their transcript text, speaker
    /// names and title (timing and roles stay).
    #[arg(long)]
    pub transcripts_days: Option<u32>,
    /// Leads older than this many days that never converted lose their
    /// contact's name, email, title and inquiry, and their scores.
    #[arg(long)]
    pub unconverted_leads_days: Option<u32>,
    /// Count ages from this instant (default: now), e.g. 2026-01-01T00:00:00Z.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Report what is due without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

/// `pipewise retention apply`.
pub fn retention(db: &Path, cmd: &RetentionCmd) -> Result<ExitCode> {
    let RetentionCmd::Apply(args) = cmd;
    let done = (|| {
        let mut policy = match &args.policy {
            Some(p) => pipewise_app::privacy::load_retention_policy(p)?,
            None => Default::default(),
        };
        if args.transcripts_days.is_some() {
            policy.transcripts_days = args.transcripts_days;
        }
        if args.unconverted_leads_days.is_some() {
            policy.unconverted_leads_days = args.unconverted_leads_days;
        }
        let as_of = match &args.as_of {
            Some(a) => Some(
                pipewise_core::parse_cell(&pipewise_core::FieldType::DateTime, a, &[])
                    .ok()
                    .and_then(|v| v.to_text())
                    .with_context(|| {
                        format!("--as-of {a:?}: expected an instant such as 2026-01-01T00:00:00Z")
                    })?,
            ),
            None => None,
        };
        let mut store = existing(db)?;
        pipewise_app::privacy::apply_retention(
            &mut store,
            &policy,
            as_of.as_deref(),
            None,
            args.dry_run,
        )
    })();
    let r = match json_outcome(done, args.json)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    {
        let verb = if r.dry_run { "would lose" } else { "lost" };
        println!(
            "As of {}: {} recorded calls {verb} their transcripts ({} turns); {} unconverted leads {verb} the personal data on the lead (contact records are kept).",
            r.as_of, r.transcripts, r.turns, r.leads
        );
        match r.audit_seq {
            Some(s) => {
                println!("Recorded in the audit log (row {s}); the database file was rewritten.")
            }
            None if r.dry_run => println!("Dry run: nothing changed."),
            None => println!("Nothing was due."),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Clone)]
pub enum PseudonymCmd {
    /// Who a pseudonym from an export stands for (needs the key it was
    /// made with).
    Reveal {
        /// The pseudonym, e.g. P-3fa9c01b77e2.
        pseudonym: String,
        /// The key the export was made with, in a file, when it is not the
        /// key in force (an export made before `pipewise db rekey`).
        #[arg(long)]
        made_with_key_file: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Clone)]
pub enum DbCmd {
    /// Encrypt a plaintext database with the key (PIPEWISE_KEY or
    /// --key-file): the file is rewritten and renamed over the old one.
    /// Stop `pipewise serve` first.
    Encrypt {
        #[arg(long)]
        json: bool,
    },
    /// Rotate the key of an encrypted database: the file is re-encrypted
    /// under the new key (PIPEWISE_NEW_KEY or --new-key-file). Stop
    /// `pipewise serve` first and restart it with the new key.
    Rekey {
        /// The new key, in a file (else PIPEWISE_NEW_KEY).
        #[arg(long, env = "PIPEWISE_NEW_KEY_FILE")]
        new_key_file: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Decrypt an encrypted database (with its key) into plaintext.
    Decrypt {
        #[arg(long)]
        json: bool,
    },
}

/// `pipewise db encrypt|rekey|decrypt`.
pub fn db(db: &Path, cmd: &DbCmd) -> Result<ExitCode> {
    use pipewise_app::privacy::{KeyChange, NEW_KEY_ENV, change_key, read_key};
    let (change, json, route) = match cmd {
        DbCmd::Encrypt { json } => (Ok(KeyChange::Encrypt), *json, "pipewise db encrypt"),
        DbCmd::Rekey { new_key_file, json } => (
            read_key(new_key_file.as_deref(), NEW_KEY_ENV)
                .context("the new key")
                .and_then(|k| {
                    k.map(|new_key| KeyChange::Rotate { new_key }).ok_or_else(|| {
                    anyhow::anyhow!(
                        "give the new key: {NEW_KEY_ENV} or --new-key-file (16 characters or more)"
                    )
                })
                }),
            *json,
            "pipewise db rekey",
        ),
        DbCmd::Decrypt { json } => (Ok(KeyChange::Decrypt), *json, "pipewise db decrypt"),
    };
    let by = format!("by OS user {}", os_user());
    let done = change.and_then(|c| change_key(db, &c, route, &by));
    let r = match json_outcome(done, json)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let state = |e: bool| if e { "encrypted" } else { "plaintext" };
    match cmd {
        DbCmd::Encrypt { .. } => println!(
            "{} is now encrypted ({} bytes). Keep the key: without it the data cannot be read.",
            r.path, r.bytes
        ),
        DbCmd::Rekey { .. } => println!(
            "{} is re-encrypted under the new key ({} bytes); the old key no longer opens it. Pseudonyms in later exports change with the key: reveal older ones with --made-with-key-file.",
            r.path, r.bytes
        ),
        DbCmd::Decrypt { .. } => println!(
            "{} is now plaintext ({} bytes): anyone who can read the file can read the data.",
            r.path, r.bytes
        ),
    }
    println!(
        "({} before, {} after; recorded in the audit log. The old file's blocks were freed, not overwritten.)",
        state(r.encrypted_before),
        state(r.encrypted_after)
    );
    Ok(ExitCode::SUCCESS)
}

/// `pipewise pseudonym reveal`: audited, since it ties an export back to a
/// person.
pub fn pseudonym(db: &Path, cmd: &PseudonymCmd) -> Result<ExitCode> {
    let PseudonymCmd::Reveal {
        pseudonym,
        made_with_key_file,
        json,
    } = cmd;
    let p = pseudonym.trim();
    if !(p.len() == 14
        && p.starts_with("P-")
        && p[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        bail!(
            "{pseudonym:?} is not a pseudonym: expected P- and 12 lower-case hex digits, e.g. P-3fa9c01b77e2"
        );
    }
    let key = pipewise_app::privacy::load_key(made_with_key_file.as_deref())?;
    let mut store = existing(db)?;
    let people = store.people()?;
    let found = pipewise_app::privacy::reveal(&key, &people, pseudonym);
    audit_cli(
        &mut store,
        "privacy.pseudonym_revealed",
        "pipewise pseudonym reveal",
        &found.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        Some(&format!("{} match(es)", found.len())),
    )?;
    if *json {
        let v: Vec<serde_json::Value> = found
            .iter()
            .map(|p| serde_json::json!({"kind": p.kind, "id": p.id, "name": p.name}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    if found.is_empty() {
        let msg = format!(
            "{pseudonym}: no one in this database under this key (an export made before `pipewise db rekey`: give its key with --made-with-key-file; a person since erased cannot be revealed)"
        );
        if *json {
            eprintln!("{msg}");
        } else {
            println!("{msg}");
        }
    } else if !*json {
        for p in &found {
            println!(
                "{pseudonym}: {} {} ({})",
                p.kind,
                p.id,
                p.name.as_deref().unwrap_or("no name")
            );
        }
    }
    Ok(if found.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// After the demo: a rep, a manager and the director (granted admin, so the
/// audit log can be read) each get a fresh password for the dashboard and a
/// token for the API, printed, then the server.
pub fn demo_serve(db: &Path, addr: SocketAddr) -> Result<ExitCode> {
    let mut store = crate::open(db)?;
    let dir = Directory::new(store.users()?, store.admins()?);
    let pick = |role: pipewise_app::scope::Role| {
        dir.all()
            .into_iter()
            .find(|u| dir.role(&u.id) == Some(role))
            .map(|u| u.id.clone())
    };
    let director = pick(pipewise_app::scope::Role::Director)
        .or_else(|| pick(pipewise_app::scope::Role::Admin));
    if let Some(d) = &director {
        store.set_admin(d, true, &auth::now())?;
    }
    let director_id = director.clone();
    let dir = Directory::new(store.users()?, store.admins()?);
    let mut lines = Vec::new();
    for who in [
        pick(pipewise_app::scope::Role::Rep),
        pick(pipewise_app::scope::Role::Manager),
        director,
    ]
    .into_iter()
    .flatten()
    {
        let c = dir.caller(&who).expect("picked from the directory");
        let t = auth::create_token(&mut store, &who, Some("demo"), Some(1))?;
        audit_cli(
            &mut store,
            "token.create",
            "pipewise demo --serve",
            std::slice::from_ref(&who),
            None,
        )?;
        let password = format!("demo-{}", &auth::random_hex(6)?);
        store.set_password_hash(&who, &auth::hash_password(&password)?, &auth::now())?;
        audit_cli(
            &mut store,
            "password.set",
            "pipewise demo --serve",
            std::slice::from_ref(&who),
            None,
        )?;
        let role = if Some(&who) == director_id.as_ref() {
            "director (admin)"
        } else {
            c.role.name()
        };
        lines.push(format!(
            "  {:<16} {:<22} user id {:<8} password {}   API token {}",
            role, c.name, who, password, t.token
        ));
    }
    drop(store);
    // The example plans beside the demo database, for the pay page.
    let plans = db
        .parent()
        .unwrap_or(Path::new("."))
        .join("pipewise-demo-plans");
    std::fs::create_dir_all(&plans)?;
    for (name, text) in [
        (
            "plan-ae.toml",
            include_str!("../../../examples/plan-ae.toml"),
        ),
        (
            "plan-steeper.toml",
            include_str!("../../../examples/plan-steeper.toml"),
        ),
    ] {
        let path = plans.join(name);
        if !path.exists() {
            std::fs::write(&path, text)?;
        }
    }
    let opts = pipewise_server::Options {
        addr,
        plans: Some(plans),
        ..Default::default()
    };
    pipewise_server::run(db, &opts, move |bound| {
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let base = format!("http://{bound}");
        let _ = writeln!(
            out,
            "\npipewise listening on {base} (database {})",
            db.display()
        );
        let _ = writeln!(
            out,
            "Serving the demo org. Open {base}/ in a browser and sign in as one of these\n(the passwords are new each run; the API tokens last one day):"
        );
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(
            out,
            "Try: curl -H \"Authorization: Bearer TOKEN\" '{base}/api/v1/opportunities?limit=5'\n     the API: {base}/openapi.json   stop: Ctrl-C"
        );
        let _ = out.flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
