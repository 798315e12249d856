//! Streaming writers: one canonical CSV per entity (the format `pipewise
//! import dir` reads), transcripts as WebVTT, and ground_truth.json assembled
//! from parts at the end. Nothing is held in memory beyond a row.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pipewise_core::Entity;

use crate::SimError;

pub struct Csv {
    w: csv::Writer<BufWriter<File>>,
    pub rows: u64,
}

impl Csv {
    fn create(dir: &Path, entity: Entity, columns: &[&str]) -> Result<Csv, SimError> {
        let path = dir.join(format!("{}.csv", entity.table()));
        let f = File::create(&path).map_err(|e| SimError::io(&path, e))?;
        let mut w = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 16, f));
        for c in columns {
            debug_assert!(
                entity.field(c).is_some(),
                "{} has no field {c}",
                entity.table()
            );
        }
        w.write_record(columns)
            .map_err(|e| SimError::Csv(path.display().to_string(), e.to_string()))?;
        Ok(Csv { w, rows: 0 })
    }

    pub fn row<I, T>(&mut self, fields: I) -> Result<(), SimError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.rows += 1;
        self.w
            .write_record(fields)
            .map_err(|e| SimError::Csv(String::new(), e.to_string()))
    }

    /// A CSV that is not a CRM entity, `dir/name`.
    fn create_named(dir: &Path, name: &str, columns: &[&str]) -> Result<Csv, SimError> {
        let path = dir.join(name);
        let f = File::create(&path).map_err(|e| SimError::io(&path, e))?;
        let mut w = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 16, f));
        w.write_record(columns)
            .map_err(|e| SimError::Csv(path.display().to_string(), e.to_string()))?;
        Ok(Csv { w, rows: 0 })
    }

    fn finish(self) -> Result<(), SimError> {
        let mut inner = self
            .w
            .into_inner()
            .map_err(|e| SimError::Csv(String::new(), e.to_string()))?;
        inner
            .flush()
            .map_err(|e| SimError::Csv(String::new(), e.to_string()))
    }
}

/// The columns of the recommendation log (`pipewise actions import-log`).
pub const RECOMMENDATION_COLUMNS: [&str; 13] = [
    "day",
    "rep_id",
    "target_kind",
    "target_id",
    "account_id",
    "action",
    "channel",
    "at",
    "window_end",
    "probability",
    "amount",
    "expected_value",
    "why",
];

pub struct Out {
    pub dir: PathBuf,
    pub teams: Csv,
    pub users: Csv,
    pub products: Csv,
    pub accounts: Csv,
    pub contacts: Csv,
    pub campaigns: Csv,
    pub leads: Csv,
    pub campaign_touches: Csv,
    pub opportunities: Csv,
    pub opportunity_products: Csv,
    pub history: Csv,
    pub activities: Csv,
    pub conversations: Csv,
    pub turns: Csv,
    pub usage: Csv,
    /// pipewise's recommendation log (`action_recommendations.csv`), in
    /// focus runs with pipewise's list.
    pub recommendations: Option<Csv>,
    /// Ground-truth parts, merged into ground_truth.json at the end.
    pub gt_leads: BufWriter<File>,
    pub gt_opps: BufWriter<File>,
    pub gt_leads_n: u64,
    pub gt_opps_n: u64,
    pub vtt_written: usize,
}

impl Out {
    pub fn create(dir: &Path) -> Result<Out, SimError> {
        std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
        let part = |name: &str| -> Result<BufWriter<File>, SimError> {
            let p = dir.join(name);
            Ok(BufWriter::with_capacity(
                1 << 16,
                File::create(&p).map_err(|e| SimError::io(&p, e))?,
            ))
        };
        Ok(Out {
            dir: dir.to_path_buf(),
            teams: Csv::create(dir, Entity::Team, &["id", "name", "region"])?,
            users: Csv::create(
                dir,
                Entity::User,
                &[
                    "id",
                    "name",
                    "email",
                    "role",
                    "manager_id",
                    "team_id",
                    "region",
                    "hire_date",
                    "timezone",
                    "working_hours",
                ],
            )?,
            products: Csv::create(
                dir,
                Entity::Product,
                &["id", "name", "family", "list_price"],
            )?,
            accounts: Csv::create(
                dir,
                Entity::Account,
                &[
                    "id",
                    "name",
                    "industry",
                    "employees",
                    "annual_revenue",
                    "year_established",
                    "location",
                    "owner_id",
                    "created_at",
                ],
            )?,
            contacts: Csv::create(
                dir,
                Entity::Contact,
                &[
                    "id",
                    "account_id",
                    "name",
                    "email",
                    "title",
                    "seniority",
                    "created_at",
                ],
            )?,
            campaigns: Csv::create(
                dir,
                Entity::Campaign,
                &["id", "name", "channel", "started_at", "ended_at", "cost"],
            )?,
            leads: Csv::create(
                dir,
                Entity::Lead,
                &[
                    "id",
                    "created_at",
                    "source",
                    "campaign_id",
                    "company",
                    "contact_name",
                    "email",
                    "title",
                    "inquiry",
                    "owner_id",
                    "first_response_at",
                    "status",
                    "converted_at",
                    "disqualified_at",
                    "account_id",
                    "contact_id",
                ],
            )?,
            campaign_touches: Csv::create(
                dir,
                Entity::CampaignTouch,
                &["id", "campaign_id", "lead_id", "touched_at", "type"],
            )?,
            opportunities: Csv::create(
                dir,
                Entity::Opportunity,
                &[
                    "id",
                    "name",
                    "account_id",
                    "owner_id",
                    "lead_id",
                    "amount",
                    "stage",
                    "forecast_category",
                    "created_at",
                    "close_date",
                    "closed_at",
                    "loss_reason",
                    "lead_source",
                    "type",
                ],
            )?,
            opportunity_products: Csv::create(
                dir,
                Entity::OpportunityProduct,
                &[
                    "opportunity_id",
                    "product_id",
                    "quantity",
                    "unit_price",
                    "amount",
                ],
            )?,
            history: Csv::create(
                dir,
                Entity::OpportunityHistory,
                &[
                    "opportunity_id",
                    "field",
                    "changed_at",
                    "value",
                    "old_value",
                ],
            )?,
            activities: Csv::create(
                dir,
                Entity::Activity,
                &[
                    "id",
                    "type",
                    "direction",
                    "occurred_at",
                    "duration_s",
                    "outcome",
                    "subject",
                    "sequence_id",
                    "sequence_step",
                    "user_id",
                    "lead_id",
                    "opportunity_id",
                    "contact_id",
                    "account_id",
                    "template_id",
                    "selection_probability",
                ],
            )?,
            conversations: Csv::create(
                dir,
                Entity::Conversation,
                &[
                    "id",
                    "started_at",
                    "duration_s",
                    "title",
                    "activity_id",
                    "opportunity_id",
                    "lead_id",
                    "user_id",
                    "source_file",
                ],
            )?,
            turns: Csv::create(
                dir,
                Entity::ConversationTurn,
                &[
                    "conversation_id",
                    "seq",
                    "speaker",
                    "speaker_role",
                    "start_ms",
                    "end_ms",
                    "text",
                ],
            )?,
            usage: Csv::create(
                dir,
                Entity::UsageEvent,
                &[
                    "id",
                    "account_id",
                    "occurred_at",
                    "event",
                    "product_id",
                    "quantity",
                ],
            )?,
            recommendations: None,
            gt_leads: part(".ground_truth_leads.part")?,
            gt_opps: part(".ground_truth_opportunities.part")?,
            gt_leads_n: 0,
            gt_opps_n: 0,
            vtt_written: 0,
        })
    }

    /// Writes `out_of_office.csv`: each rep's holidays, as a CRM calendar
    /// holds them. Returns the rows written.
    pub fn write_out_of_office(&self, periods: &[(&str, i64, i64)]) -> Result<u64, SimError> {
        let mut c = Csv::create(
            &self.dir,
            Entity::OutOfOffice,
            &["id", "user_id", "start_at", "end_at", "reason"],
        )?;
        for (k, (user, a, b)) in periods.iter().enumerate() {
            c.row([
                format!("ooo{:06}", k + 1).as_str(),
                user,
                &crate::time::instant(*a),
                &crate::time::instant(*b),
                "holiday",
            ])?;
        }
        let n = c.rows;
        c.finish()?;
        Ok(n)
    }

    pub fn write_vtt(&mut self, name: &str, text: &str, sidecar: &str) -> Result<(), SimError> {
        let dir = self.dir.join("transcripts");
        if self.vtt_written == 0 {
            std::fs::create_dir_all(&dir).map_err(|e| SimError::io(&dir, e))?;
        }
        let p = dir.join(format!("{name}.vtt"));
        std::fs::write(&p, text).map_err(|e| SimError::io(&p, e))?;
        let p = dir.join(format!("{name}.vtt.json"));
        std::fs::write(&p, sidecar).map_err(|e| SimError::io(&p, e))?;
        self.vtt_written += 1;
        Ok(())
    }

    /// Starts `action_recommendations.csv`: the deal weeks pipewise's list
    /// recommended a meeting for, in the columns `pipewise actions
    /// import-log` reads (the log pipewise keeps of the lists it made).
    pub fn start_recommendations(&mut self) -> Result<(), SimError> {
        self.recommendations = Some(Csv::create_named(
            &self.dir,
            "action_recommendations.csv",
            &RECOMMENDATION_COLUMNS,
        )?);
        Ok(())
    }

    /// Flushes the CSVs and assembles ground_truth.json from its head and parts.
    pub fn finish(self, head: &serde_json::Value) -> Result<Vec<(String, u64)>, SimError> {
        let counts = vec![
            ("teams".to_string(), self.teams.rows),
            ("users".to_string(), self.users.rows),
            ("accounts".to_string(), self.accounts.rows),
            ("contacts".to_string(), self.contacts.rows),
            ("leads".to_string(), self.leads.rows),
            ("opportunities".to_string(), self.opportunities.rows),
            ("opportunity_history".to_string(), self.history.rows),
            ("activities".to_string(), self.activities.rows),
            ("conversations".to_string(), self.conversations.rows),
            ("conversation_turns".to_string(), self.turns.rows),
            ("usage_events".to_string(), self.usage.rows),
        ];
        if let Some(c) = self.recommendations {
            c.finish()?;
        }
        for c in [
            self.teams,
            self.users,
            self.products,
            self.accounts,
            self.contacts,
            self.campaigns,
            self.leads,
            self.campaign_touches,
            self.opportunities,
            self.opportunity_products,
            self.history,
            self.activities,
            self.conversations,
            self.turns,
            self.usage,
        ] {
            c.finish()?;
        }
        let dir = self.dir;
        let io = |p: &Path, e| SimError::io(p, e);
        let mut parts = Vec::new();
        for mut w in [self.gt_leads, self.gt_opps] {
            w.flush().map_err(|e| io(&dir, e))?;
            parts.push(w);
        }
        drop(parts);
        let gt_path = dir.join("ground_truth.json");
        let mut gt = BufWriter::with_capacity(
            1 << 16,
            File::create(&gt_path).map_err(|e| io(&gt_path, e))?,
        );
        // The head object without its closing brace, then the streamed arrays.
        let head_text = serde_json::to_string_pretty(head)
            .map_err(|e| SimError::Csv("ground_truth.json".into(), e.to_string()))?;
        let head_text = head_text
            .trim_end()
            .strip_suffix('}')
            .unwrap_or(&head_text)
            .trim_end()
            .to_string();
        gt.write_all(head_text.as_bytes())
            .map_err(|e| io(&gt_path, e))?;
        for (key, part) in [
            ("leads", ".ground_truth_leads.part"),
            ("opportunities", ".ground_truth_opportunities.part"),
        ] {
            write!(gt, ",\n  \"{key}\": [\n").map_err(|e| io(&gt_path, e))?;
            let p = dir.join(part);
            let mut f = File::open(&p).map_err(|e| io(&p, e))?;
            std::io::copy(&mut f, &mut gt).map_err(|e| io(&p, e))?;
            write!(gt, "\n  ]").map_err(|e| io(&gt_path, e))?;
            std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
        }
        gt.write_all(b"\n}\n").map_err(|e| io(&gt_path, e))?;
        gt.flush().map_err(|e| io(&gt_path, e))?;
        Ok(counts)
    }
}

/// Appends one JSON value to a streamed array part.
pub fn push_json(
    w: &mut BufWriter<File>,
    n: &mut u64,
    v: &serde_json::Value,
) -> Result<(), SimError> {
    if *n > 0 {
        w.write_all(b",\n")
            .map_err(|e| SimError::Csv("ground truth".into(), e.to_string()))?;
    }
    w.write_all(b"    ")
        .and_then(|_| serde_json::to_writer(&mut *w, v).map_err(std::io::Error::other))
        .map_err(|e| SimError::Csv("ground truth".into(), e.to_string()))?;
    *n += 1;
    Ok(())
}
