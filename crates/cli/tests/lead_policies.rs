//! Closed-loop evaluation of pipewise's lead policies on simulated orgs:
//! `simulate --routing/--cadence --policy-start` runs the same leads (common
//! random numbers) under the org's own rules and under pipewise's, and the
//! hidden truth says which converted more.

mod common;

use std::path::Path;

use common::pipewise;
use serde_json::Value;

fn run(dir: &Path, name: &str, seed: &str, routing: &str, cadence: &str) -> (Value, Value) {
    let out = dir.join(name);
    let (ok, stdout, stderr) = pipewise(
        dir,
        &[
            "simulate",
            "--seed",
            seed,
            "--reps",
            "24",
            "--months",
            "14",
            "--transcript-share",
            "0",
            "--vtt-sample",
            "0",
            "--routing",
            routing,
            "--cadence",
            cadence,
            "--policy-start",
            "2024-09-01",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok, "simulate {routing}/{cadence}: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let truth: Value =
        serde_json::from_reader(std::fs::File::open(out.join("ground_truth.json")).unwrap())
            .unwrap();
    (summary, truth)
}

/// Simulates a 16-rep, 10-month org of `seed` into `d/org` under its own
/// rules, with `extra` options.
fn small_org(d: &Path, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--seed",
        seed,
        "--reps",
        "16",
        "--months",
        "10",
        "--transcript-share",
        "0",
        "--vtt-sample",
        "0",
        "--out",
        "org",
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = pipewise(d, &args);
    assert!(ok, "{err}");
}

fn under_policy(truth: &Value) -> Vec<&Value> {
    truth["leads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["under_policy"].as_bool().unwrap())
        .collect()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0.0), |(s, n), x| (s + x, n + 1.0));
    s / n
}

/// The true conversion probability averaged over the leads under the
/// policy: the expected conversion rate, with less noise than the draws.
fn expected_conversion(truth: &Value) -> f64 {
    mean(
        under_policy(truth)
            .iter()
            .map(|l| l["true_conversion_probability"].as_f64().unwrap()),
    )
}

#[test]
fn pipewise_routing_and_cadence_convert_more_of_the_same_leads() {
    let dir = tempfile::tempdir().unwrap();
    let (own, own_truth) = run(dir.path(), "own", "9107", "territory", "rep");
    let (rr, rr_truth) = run(dir.path(), "rr", "9107", "round-robin", "rep");
    let (pw, pw_truth) = run(dir.path(), "pw", "9107", "pipewise", "rep");
    let (cad, cad_truth) = run(dir.path(), "cad", "9107", "territory", "pipewise");

    // The same leads under every policy.
    let n = own["policy"]["leads"].as_u64().unwrap();
    assert!(n > 1000, "{n} leads under the policy");
    for s in [&rr, &pw, &cad] {
        assert_eq!(s["policy"]["leads"].as_u64().unwrap(), n);
    }
    assert_eq!(pw["policy"]["routing"], "pipewise");
    assert_eq!(cad["policy"]["cadence"], "pipewise");

    let base = expected_conversion(&own_truth);
    let round_robin = expected_conversion(&rr_truth);
    let routed = expected_conversion(&pw_truth);
    let cadenced = expected_conversion(&cad_truth);
    eprintln!(
        "expected conversion: territory {base:.3}, round-robin {round_robin:.3}, \
         pipewise routing {routed:.3}, pipewise cadence {cadenced:.3}"
    );
    // Small org, five months: the bars sit below the full-size targets.
    assert!(
        routed > 1.07 * base,
        "routing {routed:.3} vs territory {base:.3}"
    );
    assert!(
        routed > 1.07 * round_robin,
        "routing {routed:.3} vs round-robin {round_robin:.3}"
    );
    assert!(
        cadenced > 1.3 * base,
        "cadence {cadenced:.3} vs rep {base:.3}"
    );

    // Routing stays within capacity: no lead goes to a rep holding more
    // than two unanswered leads while a colleague holds fewer (at most a
    // few, when every candidate was that busy).
    let leads = under_policy(&pw_truth);
    let over = leads
        .iter()
        .filter(|l| l["unanswered_at_arrival"].as_u64().unwrap() > 2)
        .count();
    assert!(
        over * 100 < leads.len(),
        "{over} of {} leads over capacity",
        leads.len()
    );

    // The cadence's first reply names the inquiry's true product and pain
    // point, and its send times beat sending when each step falls due.
    let answered: Vec<&Value> = under_policy(&cad_truth)
        .into_iter()
        .filter(|l| !l["response_minutes"].is_null())
        .collect();
    let personal = mean(
        answered
            .iter()
            .map(|l| f64::from(u8::from(l["personal"].as_bool().unwrap()))),
    );
    assert!(personal >= 0.95, "personal first replies {personal:.3}");
    let followed: Vec<&&Value> = answered
        .iter()
        .filter(|l| !l["follow_up_reply_chance"].is_null())
        .collect();
    let chosen = mean(
        followed
            .iter()
            .map(|l| l["follow_up_reply_chance"].as_f64().unwrap()),
    );
    let due = mean(
        followed
            .iter()
            .map(|l| l["follow_up_reply_chance_when_due"].as_f64().unwrap()),
    );
    eprintln!("follow-up reply chance at the chosen hour {chosen:.3}, when due {due:.3}");
    assert!(chosen > 1.1 * due, "chosen {chosen:.3}, due {due:.3}");
}

#[test]
fn a_policy_start_outside_the_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = pipewise(
        dir.path(),
        &[
            "simulate",
            "--reps",
            "4",
            "--months",
            "2",
            "--routing",
            "round-robin",
            "--policy-start",
            "2030-01-01",
            "--out",
            "x",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("--policy-start 2030-01-01: must fall inside the simulated window"),
        "{stderr}"
    );
}

/// `leads route`, `leads draft` and `cadences` on an imported org.
#[test]
fn leads_are_routed_and_drafted_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_org(d, "9111", &[]);
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "import", "dir", "org"]);
    assert!(ok, "{err}");
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "route", "--json"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let leads = r["leads"].as_array().unwrap();
    assert!(!leads.is_empty(), "no lead waiting: {out}");
    assert!(
        leads.iter().any(|l| l["rule"] == "conversion"),
        "every lead kept by an account owner: {out}"
    );
    for l in leads {
        let cands = l["candidates"].as_array().unwrap();
        assert!(cands.len() >= 2);
        assert_eq!(l["recommended"], cands[0]);
        let why = l["why"].as_str().unwrap();
        if l["rule"] == "account_owner" {
            // An existing account's owner keeps its leads, and is named.
            let name = l["recommended"]["rep_name"].as_str().unwrap();
            assert!(
                why.starts_with(&format!("{name} owns the account ")),
                "{why}"
            );
            continue;
        }
        assert_eq!(l["rule"], "conversion");
        // The recommendation is the best candidate not excluded.
        let best = cands
            .iter()
            .filter(|c| c["excluded"].is_null())
            .map(|c| c["probability"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(l["recommended"]["probability"].as_f64().unwrap(), best);
        assert!(
            why.contains("% predicted conversion for a ")
                || why.contains("% predicted conversion for an "),
            "{why}"
        );
        // The recommended rep's queue is part of the reason.
        assert!(why.contains(" unanswered lead"), "{why}");
    }
    // The same leads assigned jointly by a linear program.
    let (ok, out, err) = pipewise(
        d,
        &["--db", "org.db", "leads", "route", "--batch", "--json"],
    );
    assert!(ok, "{err}");
    let b: Value = serde_json::from_str(&out).unwrap();
    assert!(b["batch"]["programs"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(b["batch"]["failed"].as_array().unwrap().len(), 0, "{out}");
    let joint = b["leads"].as_array().unwrap();
    assert_eq!(joint.len(), leads.len());
    for l in joint {
        assert!(l["rule"] == "batch" || l["rule"] == "account_owner", "{l}");
        assert_eq!(l["recommended"], l["candidates"][0]);
    }
    assert_eq!(
        b["batch"]["assigned"].as_u64().unwrap() + b["batch"]["fallback"].as_u64().unwrap(),
        joint.iter().filter(|l| l["rule"] == "batch").count() as u64
    );
    let id = leads[0]["lead_id"].as_str().unwrap();
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "draft", id, "--json"]);
    assert!(ok, "{err}");
    let draft: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(draft["personal"], true, "{out}");
    // The draft names the inquiry's true product and pain point.
    let truth: Value = serde_json::from_reader(
        std::fs::File::open(d.join("org").join("ground_truth.json")).unwrap(),
    )
    .unwrap();
    let t = truth["leads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap();
    let body = draft["body"].as_str().unwrap();
    assert!(body.contains(t["product"].as_str().unwrap()), "{body}");
    let pain = t["pain"]
        .as_str()
        .unwrap()
        .replace("our ", "your ")
        .replace("we ", "you ");
    assert!(
        body.to_lowercase().contains(&pain.to_lowercase()),
        "{pain} not in {body}"
    );

    // A local language model (a stand-in OpenAI-compatible server): its
    // body is used when it names the product and the pain point, and the
    // template stands, saying why, when it does not or cannot answer.
    let product = t["product"].as_str().unwrap().to_string();
    let replies = vec![
        format!(
            "Hi,\n\nThanks for asking about {product}. You said {pain}; that is what we fix. Could we talk this week?\n\nBest"
        ),
        "Hi, thanks for reaching out. Could we talk this week?".to_string(),
    ];
    let llm = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let llm_url = format!("http://{}", llm.local_addr().unwrap());
    let asked = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut requests = Vec::new();
        for reply in replies {
            let (stream, _) = llm.accept().unwrap();
            let mut r = BufReader::new(stream);
            let (mut line, mut length) = (String::new(), 0usize);
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap().to_string();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            r.read_exact(&mut body).unwrap();
            let answer = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": reply}}]})
                .to_string();
            write!(
                r.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            requests.push((path, serde_json::from_slice::<Value>(&body).unwrap()));
        }
        requests
    });
    let draft_with = |url: &str| {
        let (ok, out, err) = pipewise(
            d,
            &[
                "--db",
                "org.db",
                "leads",
                "draft",
                id,
                "--llm-url",
                url,
                "--llm-model",
                "tiny",
                "--json",
            ],
        );
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let by_model = draft_with(&llm_url);
    assert_eq!(by_model["generator"], "llm:tiny", "{by_model}");
    assert!(by_model["fallback"].is_null());
    assert!(by_model["body"].as_str().unwrap().contains(&product));
    assert_eq!(by_model["used"], draft["used"]);
    let refused = draft_with(&llm_url);
    assert_eq!(refused["generator"], "template");
    assert_eq!(refused["body"], draft["body"]);
    assert!(
        refused["fallback"]
            .as_str()
            .unwrap()
            .contains("did not name the product"),
        "{refused}"
    );
    let requests = asked.join().unwrap();
    assert_eq!(requests[0].0, "/v1/chat/completions");
    assert_eq!(requests[0].1["model"], "tiny");
    let prompt = requests[0].1["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains(&format!("product: {product}")), "{prompt}");
    // Nobody listening: the template, and why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = draft_with(&dead);
    assert_eq!(unreachable["generator"], "template");
    assert!(
        unreachable["fallback"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{unreachable}"
    );

    let (ok, _, err) = pipewise(d, &["--db", "org.db", "leads", "draft", "nope", "--json"]);
    assert!(!ok && err.contains("expected the id of a lead"), "{err}");

    // Speed to lead on the same database.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "sla", "--json"]);
    assert!(ok, "{err}");
    let sla: Value = serde_json::from_str(&out).unwrap();
    assert!(sla["leads"].as_u64().unwrap() > 100, "{out}");
    let bands = sla["conversion_by_response"].as_array().unwrap();
    assert_eq!(bands.len(), 5);
    let conv = |i: usize| bands[i]["conversion"].as_f64().unwrap();
    // The simulator's speed effect shows: answered in 5 minutes converts
    // more than after an hour or more, and never-answered leads least.
    assert!(conv(0) > conv(2) && conv(2) > conv(4), "{bands:?}");
    for w in sla["waiting"].as_array().unwrap() {
        let m = w["waiting_minutes"].as_f64().unwrap();
        let want = if m > 10.0 {
            "reassign"
        } else if m > 5.0 {
            "breached"
        } else {
            "within"
        };
        assert_eq!(w["state"], want, "{w}");
    }

    // A rep's follow-ups: each task is the step after the touches made.
    let owner = leads[0]["current_owner"].as_str().unwrap();
    let (ok, out, err) = pipewise(
        d,
        &["--db", "org.db", "leads", "queue", "--rep", owner, "--json"],
    );
    assert!(ok, "{err}");
    let q: Value = serde_json::from_str(&out).unwrap();
    let tasks = q["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty(), "{out}");
    for t in tasks {
        assert!(t["status"] == "late" || t["status"] == "today", "{t}");
        assert_eq!(
            t["step"].as_u64().unwrap(),
            t["touches_made"].as_u64().unwrap() + 1
        );
    }
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "leads", "queue", "--rep", "Nobody"]);
    assert!(!ok && err.contains("a rep's name or id"), "{err}");

    // A task marked done: the queue shows it done and moves the lead on.
    let lead = tasks[0]["lead_id"].as_str().unwrap();
    let step = tasks[0]["step"].as_u64().unwrap().to_string();
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db", "org.db", "leads", "mark", lead, "--step", &step, "--status", "done",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(
        d,
        &[
            "--db", "org.db", "leads", "mark", "nope", "--step", "1", "--status", "done",
        ],
    );
    assert!(!ok && err.contains("no lead with id \"nope\""), "{err}");
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db", "org.db", "leads", "queue", "--rep", owner, "--all", "--json",
        ],
    );
    assert!(ok, "{err}");
    let q: Value = serde_json::from_str(&out).unwrap();
    let of_lead: Vec<&Value> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lead_id"] == lead)
        .collect();
    assert!(
        of_lead
            .iter()
            .any(|t| t["status"] == "done" && t["step"].as_u64().unwrap().to_string() == step),
        "{of_lead:?}"
    );
    // A cadence of one's own: two steps, so a lead past them has no task.
    std::fs::write(
        d.join("short.toml"),
        "name = \"short\"\n[[step]]\nday = 0\nchannel = \"email\"\n[[step]]\nday = 2\nchannel = \"call\"\n",
    )
    .unwrap();
    let (ok, out, err) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "leads",
            "queue",
            "--rep",
            owner,
            "--cadence",
            "short.toml",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let q: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(q["cadence"], "short");
    for t in q["tasks"].as_array().unwrap() {
        assert_eq!(t["steps"], 2, "{t}");
        if t["status"] != "done" {
            assert!(t["touches_made"].as_u64().unwrap() < 2, "{t}");
        }
    }

    let (ok, out, _) = pipewise(d, &["cadences", "--json"]);
    assert!(ok);
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["steps"].as_array().unwrap().len(), 8);
    std::fs::write(
        d.join("bad.toml"),
        "name = \"x\"\n[[step]]\nday = 2\nchannel = \"email\"\n",
    )
    .unwrap();
    let (ok, _, err) = pipewise(d, &["cadences", "--file", "bad.toml"]);
    assert!(
        !ok && err.contains("bad.toml") && err.contains("day must be 0"),
        "{err}"
    );
}

/// Working hours, time zones and absences: a simulated org with holidays
/// imports them; bad calendar rows are refused with their line and column;
/// a rep who is away gets no lead, and their waiting leads are due for
/// reassignment.
#[test]
fn reps_who_are_away_get_no_leads_and_their_leads_move() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_org(d, "9112", &["--absences"]);
    let ooo = std::fs::read_to_string(d.join("org/out_of_office.csv")).unwrap();
    assert!(ooo.lines().count() > 16, "{ooo}");
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "import", "dir", "org", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("out_of_office"), "{out}");

    // Bad rows: an unknown time zone, hours that end before they start, an
    // absence that ends before it starts.
    std::fs::write(
        d.join("users.csv"),
        "id,name,role,timezone,working_hours\nx1,Ann Bad,rep,Mars/Olympus,Mon-Fri 09:00-17:00\nx2,Bo Bad,rep,Europe/Berlin,Mon-Fri 17:00-09:00\n",
    )
    .unwrap();
    let (ok, out, _) = pipewise(
        d,
        &["--db", "org.db", "import", "csv", "users.csv", "--json"],
    );
    assert!(!ok);
    assert!(
        out.contains("IANA time zone") && out.contains("Mars/Olympus"),
        "{out}"
    );
    assert!(out.contains("the end must come after the start"), "{out}");
    std::fs::write(
        d.join("out_of_office.csv"),
        "id,user_id,start_at,end_at\nbad1,r00001,2024-08-10,2024-08-03\n",
    )
    .unwrap();
    let (ok, out, _) = pipewise(
        d,
        &[
            "--db",
            "org.db",
            "import",
            "csv",
            "out_of_office.csv",
            "--json",
        ],
    );
    assert!(!ok);
    assert!(out.contains("expected an end after the start"), "{out}");
    assert!(
        out.contains("\"line\":2") || out.contains("\"line\": 2"),
        "{out}"
    );

    // The rep the router picks first, sent on holiday over the as-of date.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "route", "--json"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let lead = r["leads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rule"] == "conversion")
        .expect("a lead routed by conversion");
    let (id, rep) = (
        lead["lead_id"].as_str().unwrap().to_string(),
        lead["recommended"]["rep_id"].as_str().unwrap().to_string(),
    );
    std::fs::write(
        d.join("out_of_office.csv"),
        format!("id,user_id,start_at,end_at,reason\nt1,{rep},2020-01-01,2035-01-01,sabbatical\n"),
    )
    .unwrap();
    let (ok, _, err) = pipewise(d, &["--db", "org.db", "import", "csv", "out_of_office.csv"]);
    assert!(ok, "{err}");
    let (ok, out, err) = pipewise(
        d,
        &["--db", "org.db", "leads", "route", "--lead", &id, "--json"],
    );
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let l = &r["leads"][0];
    assert_ne!(l["recommended"]["rep_id"], rep.as_str(), "{out}");
    let away = l["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rep_id"] == rep.as_str())
        .unwrap();
    assert_eq!(
        away["excluded"], "out of office until 2035-01-01 00:00 UTC",
        "{out}"
    );
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "route", "--all", "--json"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    // Every rep recommended anywhere is at work, also as an account's
    // owner (who keeps its leads only while not away).
    for l in r["leads"].as_array().unwrap() {
        assert_ne!(l["recommended"]["rep_id"], rep.as_str(), "{l}");
        if l["rule"] == "account_owner" {
            let why = l["candidates"][0]["excluded"].as_str().unwrap_or("");
            assert!(!why.starts_with("out of office"), "{l}");
        }
    }
    // The away rep's waiting leads are due for reassignment at once.
    let (ok, out, err) = pipewise(d, &["--db", "org.db", "leads", "sla", "--json"]);
    assert!(ok, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    let waiting = s["waiting"].as_array().unwrap();
    for w in waiting {
        if w["owner_id"] == rep.as_str() {
            assert!(w["owner_away_until"].is_number(), "{w}");
        }
        // Away owners (the sabbatical, and the simulated holidays) answer
        // nothing: their leads move at once.
        if w["owner_away_until"].is_number() {
            assert_eq!(w["state"], "reassign", "{w}");
        }
    }
    assert!(
        waiting.iter().any(|w| w["owner_away_until"].is_number()),
        "no waiting lead of an away owner: {out}"
    );
}
