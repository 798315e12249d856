//! `pipewise serve`: the HTTP API over the use cases of [`pipewise_app`].
//!
//! Handlers only parse and present: authentication resolves the caller
//! (`Authorization: Bearer TOKEN`), the use case filters by the caller's
//! scope and records the read in the audit log, and the handler returns its
//! view as JSON. Errors are `application/problem+json` (RFC 9457). The
//! OpenAPI 3.1 document is generated from the handlers' annotations (utoipa),
//! so routes and spec cannot drift: `/openapi.json`. The web dashboard
//! ([`web`]) serves HTML pages over the same use cases to a signed-in browser.

mod extract;
mod metrics;
pub mod problem;
mod routes;
pub mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use pipewise_app::Service;

pub use problem::Problem;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    /// Logs as JSON lines (else human-readable lines), on standard error.
    pub json_logs: bool,
    /// A request taking longer is answered 408.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// Marks the session cookie `Secure` on every response (for a server
    /// reached only over HTTPS through a TLS-terminating proxy). Without it
    /// the cookie is `Secure` on the responses to requests the proxy
    /// forwarded from HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// The speed-to-lead SLA in the owner's working minutes, the watch's period, and
    /// whether a lead waiting past twice the SLA is given to another rep.
    pub sla_minutes: f64,
    pub sla_check: Duration,
    pub reassign: bool,
    /// Where the watch posts its events (`lead.sla_breached`,
    /// `lead.reassigned`) as JSON; none: they are only logged.
    pub lead_webhook: Option<String>,
    /// A local language model for first-reply drafts (none: the template).
    pub llm: Option<pipewise_app::leads::LlmOptions>,
    /// A directory of incentive plans (`*.toml`) for the comp use cases;
    /// none: `/api/v1/comp/plans` says how to give one.
    pub plans: Option<std::path::PathBuf>,
    /// Serve HTTPS with this certificate chain and private key (PEM files);
    /// none: plain HTTP (behind a TLS-terminating proxy, or on loopback).
    pub tls: Option<Tls>,
}

/// The server's certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            json_logs: false,
            request_timeout: Duration::from_secs(30),
            body_limit: 64 << 20,
            secure_cookies: false,
            sla_minutes: 5.0,
            sla_check: Duration::from_secs(60),
            reassign: true,
            lead_webhook: None,
            llm: None,
            plans: None,
            tls: None,
        }
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub metrics: Arc<metrics::Metrics>,
}

/// The application: its routes with their middleware, and the OpenAPI
/// document they were built from.
pub fn app(service: Arc<Service>, opts: &Options) -> (Router, utoipa::openapi::OpenApi) {
    app_with(service, Arc::new(metrics::Metrics::new()), opts)
}

fn app_with(
    service: Arc<Service>,
    metrics: Arc<metrics::Metrics>,
    opts: &Options,
) -> (Router, utoipa::openapi::OpenApi) {
    routes::router(AppState { service, metrics }, opts)
}

/// The OpenAPI document alone (for `pipewise serve --print-openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::spec()
}

fn init_logs(json: bool) {
    // PIPEWISE_LOG=error|warn|info|debug|trace (default info).
    let level = std::env::var("PIPEWISE_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second call (tests running several servers) keeps the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Opens the database, scores the pipeline, binds `opts.addr` and serves
/// until Ctrl-C or SIGTERM, finishing the requests in flight. `ready` is
/// called with the bound address (port 0 binds a free one).
pub fn run(db: &Path, opts: &Options, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    init_logs(opts.json_logs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let started = Instant::now();
        let path = db.to_path_buf();
        let llm = opts.llm.clone();
        let plans = opts.plans.clone();
        let service = tokio::task::spawn_blocking(move || {
            Service::open(&path).map(|s| s.with_llm(llm).with_plans(plans))
        })
                .await
                .context("opening the database")??;
        let scored_in = started.elapsed();
        tracing::info!(
            database = %db.display(),
            seconds = scored_in.as_secs_f64(),
            pipeline = %service.readiness(),
            "database open"
        );
        if pipewise_app::privacy::load_key(None).is_ok() && !service.encrypted() {
            tracing::warn!(
                database = %db.display(),
                "a key is set but the database is not encrypted: stop the server and run `pipewise db encrypt`"
            );
        }
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.engine("score_pipeline", scored_in.as_secs_f64());
        let service = Arc::new(service);
        tokio::spawn(reload_loop(service.clone(), metrics.clone()));
        tokio::spawn(sla_loop(service.clone(), opts.clone()));
        // Over TLS every cookie is Secure.
        let mut opts = opts.clone();
        opts.secure_cookies |= opts.tls.is_some();
        let tls = match &opts.tls {
            Some(t) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot use the certificate {} with the key {} (PEM files: the certificate chain, then a PKCS#8, PKCS#1 or SEC1 private key)",
                            t.cert.display(),
                            t.key.display()
                        )
                    })?,
            ),
            None => None,
        };
        let (router, _) = app_with(service, metrics, &opts);
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .with_context(|| format!("cannot listen on {}", opts.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, tls = tls.is_some(), "listening");
        ready(addr);
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        match tls {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await
                .context("the server stopped with an error")?,
            Some(config) => {
                let handle = axum_server::Handle::new();
                let stop = handle.clone();
                tokio::spawn(async move {
                    shutdown().await;
                    stop.graceful_shutdown(Some(Duration::from_secs(30)));
                });
                axum_server::from_tcp_rustls(listener.into_std()?, config)?
                    .handle(handle)
                    .serve(app)
                    .await
                    .context("the server stopped with an error")?;
            }
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// Every `PIPEWISE_RELOAD_SECS` seconds (default 15): if another process
/// imported data, trained or activated a model, or changed an admin grant,
/// re-read the users and re-score the pipeline (requests keep being answered
/// from the old book meanwhile).
async fn reload_loop(service: Arc<Service>, metrics: Arc<metrics::Metrics>) {
    let secs = std::env::var("PIPEWISE_RELOAD_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(15)
        .max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(secs));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = service.clone();
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || s.reload_if_changed()).await {
            Ok(Ok(true)) => {
                metrics.engine("score_pipeline", started.elapsed().as_secs_f64());
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    pipeline = %service.readiness(),
                    "the database changed: reloaded"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "cannot reload"),
            Err(e) => tracing::warn!(error = %e, "reload task failed"),
        }
    }
}

/// Every `opts.sla_check`: the speed-to-lead watch over the wall clock
/// (`Service::sla_sweep`), each event logged and posted to the lead webhook
/// (three tries; a post that still fails is logged).
async fn sla_loop(service: Arc<Service>, opts: Options) {
    let watch = pipewise_app::lead_desk::SlaWatch {
        minutes: opts.sla_minutes,
        reassign: opts.reassign,
    };
    let mut tick = tokio::time::interval(opts.sla_check.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp();
        let events = match service.sla_sweep(&watch, now).await {
            Ok(e) => e,
            // Lead scores still computing, or no leads: try at the next tick.
            Err(_) => continue,
        };
        for e in events {
            tracing::info!(event = %e.event, lead = %e.lead_id, owner = ?e.owner_id,
                new_owner = ?e.new_owner_id, minutes = e.waiting_minutes, "speed to lead");
            if let Some(url) = opts.lead_webhook.clone() {
                // Three tries, 1 s and then 4 s apart.
                let posted = tokio::task::spawn_blocking(move || {
                    let mut last = None;
                    for wait in [0u64, 1, 4] {
                        std::thread::sleep(Duration::from_secs(wait));
                        match ureq::post(&url)
                            .config()
                            .timeout_global(Some(Duration::from_secs(10)))
                            .build()
                            .send_json(&e)
                        {
                            Ok(_) => return Ok(()),
                            Err(err) => last = Some(err),
                        }
                    }
                    Err(last.expect("three tries"))
                })
                .await;
                match posted {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "the lead webhook refused an event")
                    }
                    Err(err) => tracing::warn!(error = %err, "the lead webhook task failed"),
                }
            }
        }
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
