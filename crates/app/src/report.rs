//! Reports as documents: built once as blocks (headings, paragraphs, lists,
//! quotes, tables) and rendered as plain text, Markdown or standalone HTML,
//! so the command line and the server show the same report.

use pipewise_engines::coach::{self, METRICS, MetricFamily, Validation, format_metric};
use pipewise_engines::coach_plan::Plan;
use pipewise_features::format_date;

use crate::coaching::CoachRun;

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A report as blocks, rendered as text, Markdown or HTML.
pub struct Doc {
    blocks: Vec<Block>,
}

enum Block {
    H1(String),
    H2(String),
    H3(String),
    P(String),
    List(Vec<String>),
    Quote(String),
    Table(Vec<String>, Vec<Vec<String>>),
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Doc {
    pub fn text(&self) -> String {
        let mut s = String::new();
        for b in &self.blocks {
            match b {
                Block::H1(t) => s += &format!("{t}\n{}\n\n", "=".repeat(t.chars().count())),
                Block::H2(t) => s += &format!("{t}\n{}\n", "-".repeat(t.chars().count())),
                Block::H3(t) => s += &format!("\n{t}\n"),
                Block::P(t) => s += &format!("{t}\n\n"),
                Block::List(items) => {
                    for i in items {
                        s += &format!("  - {i}\n");
                    }
                    s += "\n";
                }
                Block::Quote(t) => s += &format!("    > {t}\n"),
                Block::Table(h, rows) => {
                    let w: Vec<usize> = (0..h.len())
                        .map(|j| {
                            rows.iter()
                                .map(|r| r[j].chars().count())
                                .chain([h[j].chars().count()])
                                .max()
                                .unwrap_or(0)
                        })
                        .collect();
                    let line = |r: &[String]| {
                        r.iter()
                            .zip(&w)
                            .map(|(c, w)| format!("{c:<w$}"))
                            .collect::<Vec<_>>()
                            .join("  ")
                            .trim_end()
                            .to_string()
                            + "\n"
                    };
                    s += &line(h);
                    for r in rows {
                        s += &line(r);
                    }
                    s += "\n";
                }
            }
        }
        s
    }
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let cell = |c: &str| c.replace('|', "\\|");
        for b in &self.blocks {
            match b {
                Block::H1(t) => s += &format!("# {t}\n\n"),
                Block::H2(t) => s += &format!("## {t}\n\n"),
                Block::H3(t) => s += &format!("### {t}\n\n"),
                Block::P(t) => s += &format!("{t}\n\n"),
                Block::List(items) => {
                    for i in items {
                        s += &format!("- {i}\n");
                    }
                    s += "\n";
                }
                Block::Quote(t) => s += &format!("> {t}\n\n"),
                Block::Table(h, rows) => {
                    s += &format!(
                        "| {} |\n|{}|\n",
                        h.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "),
                        h.iter().map(|_| " --- ").collect::<Vec<_>>().join("|")
                    );
                    for r in rows {
                        s += &format!(
                            "| {} |\n",
                            r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                        );
                    }
                    s += "\n";
                }
            }
        }
        s
    }
    pub fn html(&self, title: &str) -> String {
        let mut s = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45;color:#222}}table{{border-collapse:collapse;margin:0.5rem 0 1rem}}td,th{{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:left}}blockquote{{border-left:3px solid #999;margin:0.3rem 0 0.3rem 1rem;padding-left:0.6rem;color:#444}}h2{{border-bottom:1px solid #ddd;margin-top:2rem}}</style></head><body>\n",
            esc(title)
        );
        for b in &self.blocks {
            match b {
                Block::H1(t) => s += &format!("<h1>{}</h1>\n", esc(t)),
                Block::H2(t) => s += &format!("<h2>{}</h2>\n", esc(t)),
                Block::H3(t) => s += &format!("<h3>{}</h3>\n", esc(t)),
                Block::P(t) => s += &format!("<p>{}</p>\n", esc(t)),
                Block::List(items) => {
                    s += &format!(
                        "<ul>{}</ul>\n",
                        items
                            .iter()
                            .map(|i| format!("<li>{}</li>", esc(i)))
                            .collect::<String>()
                    )
                }
                Block::Quote(t) => s += &format!("<blockquote>{}</blockquote>\n", esc(t)),
                Block::Table(h, rows) => {
                    s += &format!(
                        "<table><tr>{}</tr>",
                        h.iter()
                            .map(|c| format!("<th>{}</th>", esc(c)))
                            .collect::<String>()
                    );
                    for r in rows {
                        s += &format!(
                            "<tr>{}</tr>",
                            r.iter()
                                .map(|c| format!("<td>{}</td>", esc(c)))
                                .collect::<String>()
                        );
                    }
                    s += "</table>\n";
                }
            }
        }
        s + "</body></html>\n"
    }
}

fn decision_note(d: &Option<pipewise_engines::coach_plan::DecisionNote>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let mut out = format!(" [manager: {}", d.action);
    if let Some(t) = &d.edited_text {
        out.push_str(&format!(" to \"{t}\""));
    }
    if let Some(r) = &d.reason {
        out.push_str(&format!(": {r}"));
    }
    out.push(']');
    out
}

/// The coaching report of some reps.
pub fn report(
    title: &str,
    run: &CoachRun,
    reps: &[usize],
    plans: &[Plan],
    validation: Option<&Validation>,
) -> Doc {
    let p = &run.profiles;
    let mut b = vec![Block::H1(title.to_string())];
    b.push(Block::P(format!(
        "Window {} to {}. Top performers are the best quarter of reps by won bookings per week and win rate; gaps are priced by outcome models fitted on {} closed deals with recorded calls and {} leads.",
        format_date(p.window_start),
        format_date(p.as_of),
        run.impact.deals_used,
        run.impact.leads_used
    )));
    if reps.len() > 1 {
        let rows: Vec<Vec<String>> = plans
            .iter()
            .zip(reps)
            .map(|(pl, &i)| {
                let r = &p.reps[i];
                let first = pl.priorities.first();
                vec![
                    r.name.clone(),
                    if r.top_performer {
                        "top".into()
                    } else {
                        String::new()
                    },
                    r.values[coach::metric_index("win_rate").expect("known")]
                        .map_or("-".into(), pct),
                    first.map_or("-".into(), |g| g.skill.label().to_string()),
                    first.map_or("-".into(), |g| {
                        pipewise_core::value::format_money(g.gap.bookings_per_quarter)
                    }),
                    pl.weakest.map_or("-".into(), |s| s.label().to_string()),
                    pl.alerts.len().to_string(),
                ]
            })
            .collect();
        b.push(Block::H2("Team overview".into()));
        b.push(Block::Table(
            [
                "rep",
                "",
                "win rate",
                "first priority",
                "worth a quarter",
                "weakest skill",
                "deal alerts",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
    }
    for (pl, &i) in plans.iter().zip(reps) {
        let r = &p.reps[i];
        b.push(Block::H2(format!(
            "{}{}",
            r.name,
            r.team_name
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )));
        b.push(Block::P(format!(
            "Peer group: {}.{} Weakest skill: {}.",
            r.peer_group,
            if r.top_performer {
                " A top performer."
            } else {
                ""
            },
            pl.weakest.map_or("-", |s| s.label())
        )));
        let fams = [
            (MetricFamily::Activity, "activity"),
            (MetricFamily::Communication, "communication"),
            (MetricFamily::Outcome, "outcome"),
        ];
        let rows: Vec<Vec<String>> = METRICS
            .iter()
            .enumerate()
            .filter_map(|(j, d)| {
                let v = r.values[j]?;
                Some(vec![
                    fams.iter()
                        .find(|f| f.0 == d.family)
                        .map_or("", |f| f.1)
                        .to_string(),
                    d.label.to_string(),
                    format_metric(d, v),
                    r.percentiles[j].map_or("-".into(), |x| format!("{x:.0}")),
                    p.top_reference[j].map_or("-".into(), |t| format_metric(d, t)),
                ])
            })
            .collect();
        b.push(Block::Table(
            ["", "metric", "value", "peer percentile", "top performers"]
                .map(String::from)
                .to_vec(),
            rows,
        ));
        if pl.priorities.is_empty() {
            b.push(Block::P(
                "No gap against the top performers worth coaching.".into(),
            ));
        }
        for (k, pr) in pl.priorities.iter().enumerate() {
            b.push(Block::H3(format!(
                "Priority {}: {} [{}]{}",
                k + 1,
                pr.skill.label(),
                pr.id,
                decision_note(&pr.decision)
            )));
            b.push(Block::P(pr.headline.clone()));
            let mut items: Vec<String> = pr
                .modules
                .iter()
                .map(|m| {
                    format!(
                        "Training: {} ({} min) - {}",
                        m.name, m.minutes, m.description
                    )
                })
                .collect();
            if let Some(c) = &pr.peer_coach {
                items.push(format!(
                    "Peer coach: {}{}{}",
                    c.name,
                    c.team
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default(),
                    if c.same_team { ", same team" } else { "" }
                ));
            }
            if let Some(rp) = &pr.roleplay {
                let rec = rp
                    .record
                    .iter()
                    .take(3)
                    .map(|o| {
                        format!(
                            "{} met {}x, steamrolled {}x, on lost deals {}x",
                            o.kind.name().replace('_', " "),
                            o.met,
                            o.steamrolled,
                            o.on_lost_deals
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                items.push(format!(
                    "Role-play ({} objection): {} Your record: {rec}.",
                    rp.objection.name().replace('_', " "),
                    rp.brief
                ));
            }
            b.push(Block::List(items));
            if let Some(rp) = &pr.roleplay {
                for q in &rp.excerpts {
                    b.push(Block::Quote(format!(
                        "{} {} at {}, {}: \"{}\"",
                        q.call,
                        q.date.as_deref().unwrap_or(""),
                        q.at,
                        q.note,
                        q.text
                    )));
                }
            }
            if !pr.quotes.is_empty() {
                b.push(Block::P("From your calls:".into()));
                for q in &pr.quotes {
                    b.push(Block::Quote(format!(
                        "{} {} at {} ({}): \"{}\"",
                        q.call,
                        q.date.as_deref().unwrap_or(""),
                        q.at,
                        q.note,
                        q.text
                    )));
                }
            }
        }
        if !pl.alerts.is_empty() {
            b.push(Block::H3(
                "For the manager: deals at risk of slipping".into(),
            ));
            let items = pl
                .alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} {} ({}), slip risk {}: {}{} [{}]",
                        a.opportunity,
                        a.name.as_deref().unwrap_or(""),
                        a.amount
                            .map_or("-".into(), pipewise_core::value::format_money),
                        pct(a.slip_probability),
                        a.talking_points.join(" "),
                        decision_note(&a.decision),
                        a.id
                    )
                })
                .collect();
            b.push(Block::List(items));
        } else if run.slip.is_empty() {
            b.push(Block::P(
                "No slip model is trained, so no deal alerts (run `pipewise train`).".into(),
            ));
        }
    }
    if let Some(v) = validation {
        b.push(Block::H2("Against the simulator's latent skills".into()));
        b.push(Block::P(validation_sentence(v)));
    }
    Doc { blocks: b }
}

pub fn validation_sentence(v: &Validation) -> String {
    let sp = v
        .spearman
        .iter()
        .map(|(s, r)| format!("{} {r:.2}", s.label()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} reps. Spearman correlation of the estimated and latent skill: {sp}. The top-ranked gap (ranked by size, the default) is the latent weakest skill for {:.0}% of reps (among the top two: {:.0}%); ranked by estimated worth (--rank worth): {:.0}% ({:.0}%). The lowest estimated skill is the latent weakest for {:.0}%.",
        v.reps,
        v.top1_by_gap * 100.0,
        v.top2_by_gap * 100.0,
        v.top1_by_worth * 100.0,
        v.top2_by_worth * 100.0,
        v.weakest_match * 100.0
    )
}
