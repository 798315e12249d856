//! The entities of the data model and their fields, as data.
//!
//! Every importer, the store's upsert statements, the data-format documentation
//! (`pipewise schema --markdown`) and the statistics are driven by this one table,
//! so a field added here is added everywhere at once. The SQL migrations in the
//! store crate must declare the same columns; a store test checks that they do.

use serde::Serialize;

/// A closed set of values a field may take. Cells are matched after
/// normalisation (trimmed, lower-cased, spaces and hyphens as underscores), so
/// `Closed Won`, `closed-won` and `closed_won` are all `closed_won`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Vocabulary {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

impl Vocabulary {
    /// The canonical value for `raw`, if it is one of this vocabulary's values.
    pub fn normalise(&self, raw: &str) -> Option<&'static str> {
        if let Some(v) = self.values.iter().copied().find(|v| *v == raw) {
            return Some(v);
        }
        let mut key = String::with_capacity(raw.len());
        for c in raw.trim().chars() {
            match c {
                ' ' | '-' => key.push('_'),
                c => key.extend(c.to_lowercase()),
            }
        }
        self.values.iter().copied().find(|v| *v == key)
    }
}

pub const STAGES: Vocabulary = Vocabulary {
    name: "stage",
    values: &[
        "prospecting",
        "qualification",
        "discovery",
        "proposal",
        "negotiation",
        "closed_won",
        "closed_lost",
    ],
};
pub const FORECAST_CATEGORIES: Vocabulary = Vocabulary {
    name: "forecast category",
    values: &["pipeline", "best_case", "commit", "closed", "omitted"],
};
pub const ROLES: Vocabulary = Vocabulary {
    name: "role",
    values: &[
        "rep",
        "sdr",
        "manager",
        "director",
        "executive",
        "analyst",
        "admin",
    ],
};
pub const SENIORITIES: Vocabulary = Vocabulary {
    name: "seniority",
    values: &["individual", "manager", "director", "vp", "c_level"],
};
pub const LEAD_STATUSES: Vocabulary = Vocabulary {
    name: "lead status",
    values: &["new", "working", "nurturing", "converted", "disqualified"],
};
pub const ACTIVITY_TYPES: Vocabulary = Vocabulary {
    name: "activity type",
    values: &["call", "email", "meeting", "sms", "social"],
};
pub const DIRECTIONS: Vocabulary = Vocabulary {
    name: "direction",
    values: &["inbound", "outbound"],
};
pub const ACTIVITY_OUTCOMES: Vocabulary = Vocabulary {
    name: "activity outcome",
    values: &[
        "connected",
        "no_answer",
        "voicemail",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "replied",
        "replied_positive",
        "replied_negative",
        "meeting_booked",
        "unsubscribed",
        "bounced",
        "held",
        "no_show",
        "cancelled",
        "completed",
    ],
};
pub const SPEAKER_ROLES: Vocabulary = Vocabulary {
    name: "speaker role",
    values: &["rep", "customer", "other"],
};
pub const TOUCH_TYPES: Vocabulary = Vocabulary {
    name: "touch type",
    values: &[
        "sent",
        "opened",
        "clicked",
        "responded",
        "attended",
        "visited",
        "submitted",
    ],
};
/// The opportunity fields whose every change is kept in `opportunity_history`.
pub const HISTORY_FIELDS: Vocabulary = Vocabulary {
    name: "tracked field",
    values: &[
        "stage",
        "amount",
        "close_date",
        "owner_id",
        "forecast_category",
    ],
};

/// What a field holds, and so how a text cell is parsed and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FieldType {
    Text,
    Int,
    /// A decimal number (amounts, prices, quantities).
    Float,
    /// A probability: a number greater than 0 and at most 1.
    Probability,
    /// A calendar date, stored as `YYYY-MM-DD`.
    Date,
    /// An instant, stored in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
    DateTime,
    Bool,
    Enum(Vocabulary),
    /// The id of a row of another (or the same) entity.
    Ref(Entity),
    /// An ISO 4217 currency code (`USD`, `MXN`), stored upper-case.
    Currency,
    /// An IANA time zone name (`Europe/Berlin`), stored as the database
    /// spells it.
    TimeZone,
    /// A working week such as `Mon-Fri 09:00-17:30`
    /// ([`crate::hours::WorkingHours`]), stored in its canonical form.
    WorkingHours,
}

impl FieldType {
    /// What a cell of this type must look like, for error messages.
    pub fn expected(&self) -> String {
        match self {
            FieldType::Text => "text".into(),
            FieldType::Int => "a whole number".into(),
            FieldType::Float => "a number such as 1250 or 1250.50".into(),
            FieldType::Probability => {
                "a probability greater than 0 and at most 1, such as 0.25".into()
            }
            FieldType::Date => "a date such as 2025-03-31".into(),
            FieldType::DateTime => "a date-time such as 2025-03-31T14:05:00Z (or a date)".into(),
            FieldType::Bool => "true/false, yes/no or 1/0".into(),
            FieldType::Enum(v) => {
                let article = if v.name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {} ({})", v.name, v.values.join(", "))
            }
            FieldType::Ref(e) => format!("the id of a row in {}", e.table()),
            FieldType::Currency => "an ISO 4217 currency code such as USD or EUR".into(),
            FieldType::TimeZone => {
                "an IANA time zone such as Europe/Berlin or America/New_York".into()
            }
            FieldType::WorkingHours => crate::hours::WORKING_HOURS_EXPECTED.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: FieldType, required: bool, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required,
        doc,
    }
}

use FieldType::*;

/// Every kind of record pipewise stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Entity {
    Team,
    User,
    Product,
    Account,
    Contact,
    Campaign,
    Lead,
    Opportunity,
    OpportunityProduct,
    OpportunityHistory,
    Activity,
    Conversation,
    ConversationTurn,
    CampaignTouch,
    UsageEvent,
    ExchangeRate,
    OutOfOffice,
}

impl Entity {
    /// All entities, parents before children: the order in which a directory of
    /// files is imported.
    pub const ALL: [Entity; 17] = [
        Entity::Team,
        Entity::User,
        Entity::Product,
        Entity::Account,
        Entity::Contact,
        Entity::Campaign,
        Entity::Lead,
        Entity::Opportunity,
        Entity::OpportunityProduct,
        Entity::OpportunityHistory,
        Entity::Activity,
        Entity::Conversation,
        Entity::ConversationTurn,
        Entity::CampaignTouch,
        Entity::UsageEvent,
        Entity::ExchangeRate,
        Entity::OutOfOffice,
    ];

    /// Table name, also the canonical file stem (`opportunities.csv`).
    pub fn table(self) -> &'static str {
        match self {
            Entity::Team => "teams",
            Entity::User => "users",
            Entity::Product => "products",
            Entity::Account => "accounts",
            Entity::Contact => "contacts",
            Entity::Campaign => "campaigns",
            Entity::Lead => "leads",
            Entity::Opportunity => "opportunities",
            Entity::OpportunityProduct => "opportunity_products",
            Entity::OpportunityHistory => "opportunity_history",
            Entity::Activity => "activities",
            Entity::Conversation => "conversations",
            Entity::ConversationTurn => "conversation_turns",
            Entity::CampaignTouch => "campaign_touches",
            Entity::UsageEvent => "usage_events",
            Entity::ExchangeRate => "exchange_rates",
            Entity::OutOfOffice => "out_of_office",
        }
    }

    pub fn from_table(name: &str) -> Option<Entity> {
        let n = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Entity::ALL
            .into_iter()
            .find(|e| e.table() == n || e.singular() == n)
    }

    pub fn singular(self) -> &'static str {
        match self {
            Entity::Team => "team",
            Entity::User => "user",
            Entity::Product => "product",
            Entity::Account => "account",
            Entity::Contact => "contact",
            Entity::Campaign => "campaign",
            Entity::Lead => "lead",
            Entity::Opportunity => "opportunity",
            Entity::OpportunityProduct => "opportunity_product",
            Entity::OpportunityHistory => "opportunity_history_entry",
            Entity::Activity => "activity",
            Entity::Conversation => "conversation",
            Entity::ConversationTurn => "conversation_turn",
            Entity::CampaignTouch => "campaign_touch",
            Entity::UsageEvent => "usage_event",
            Entity::ExchangeRate => "exchange_rate",
            Entity::OutOfOffice => "out_of_office_period",
        }
    }

    pub fn doc(self) -> &'static str {
        match self {
            Entity::Team => "A sales team.",
            Entity::User => "A person who sells or manages: reps, SDRs, managers, admins.",
            Entity::Product => "A product or SKU that can be sold.",
            Entity::Account => "A customer or prospect company.",
            Entity::Contact => "A person at an account.",
            Entity::Campaign => "A marketing campaign that produces touches and leads.",
            Entity::Lead => "An inbound or outbound lead, with its response and outcome.",
            Entity::Opportunity => {
                "A deal. Its current state; every change to a tracked field is kept in opportunity_history."
            }
            Entity::OpportunityProduct => "A product line on an opportunity.",
            Entity::OpportunityHistory => {
                "One change of one tracked field (stage, amount, close_date, owner_id, forecast_category) of an opportunity: from `changed_at` on, the field held `value`."
            }
            Entity::Activity => {
                "A call, email, meeting, SMS or social touch, linked to what it was about."
            }
            Entity::Conversation => {
                "A recorded call or meeting with a transcript (see conversation_turns)."
            }
            Entity::ConversationTurn => "One speaker turn of a conversation transcript.",
            Entity::CampaignTouch => "One marketing touch of a lead or contact by a campaign.",
            Entity::UsageEvent => "A product-usage event of an account (optional).",
            Entity::OutOfOffice => {
                "A period a user is away (holiday, leave, training): leads are not routed to a rep who is away, and a lead whose owner is away is due for reassignment."
            }
            Entity::ExchangeRate => {
                "A dated exchange rate: from `valid_from` on, one unit of the corporate currency is `rate` units of `currency` (as Salesforce's dated conversion rates). Amounts are converted at the rate in effect on the deal's close date."
            }
        }
    }

    /// The columns that identify a row; re-imports upsert on them.
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Entity::OpportunityProduct => &["opportunity_id", "product_id"],
            Entity::OpportunityHistory => &["opportunity_id", "field", "changed_at", "seq"],
            Entity::ExchangeRate => &["currency", "valid_from"],
            Entity::ConversationTurn => &["conversation_id", "seq"],
            _ => &["id"],
        }
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            Entity::Team => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("name", Text, true, "Team name."),
                        f(
                            "region",
                            Text,
                            false,
                            "Region or office the team belongs to.",
                        ),
                    ]
                }
            }
            Entity::User => {
                const {
                    &[
                        f(
                            "id",
                            Text,
                            true,
                            "Stable external id (e.g. CRM user id or email).",
                        ),
                        f("name", Text, true, "Full name."),
                        f("email", Text, false, "Work email."),
                        f("role", Enum(ROLES), false, "Role; `rep` when empty."),
                        f(
                            "manager_id",
                            Ref(Entity::User),
                            false,
                            "The user's manager.",
                        ),
                        f("team_id", Ref(Entity::Team), false, "The user's team."),
                        f("region", Text, false, "Region or office."),
                        f("hire_date", Date, false, "Date of hire (tenure, ramp)."),
                        f(
                            "timezone",
                            TimeZone,
                            false,
                            "IANA time zone the user works in (Europe/Berlin); empty: UTC.",
                        ),
                        f(
                            "working_hours",
                            WorkingHours,
                            false,
                            "Local working week, e.g. `Mon-Fri 09:00-17:30` or `Mon-Thu 09:00-17:00; Fri 09:00-13:00`; empty: the org's business hours. Leads are routed to reps at work, and the speed-to-lead clock runs in the owner's hours.",
                        ),
                    ]
                }
            }
            Entity::Product => {
                const {
                    &[
                        f(
                            "id",
                            Text,
                            true,
                            "Stable external id (SKU or product name).",
                        ),
                        f("name", Text, true, "Product name."),
                        f("family", Text, false, "Product family or series."),
                        f("list_price", Float, false, "List price per unit."),
                    ]
                }
            }
            Entity::Account => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("name", Text, true, "Company name."),
                        f("industry", Text, false, "Industry or sector."),
                        f("employees", Int, false, "Number of employees."),
                        f(
                            "annual_revenue",
                            Float,
                            false,
                            "Annual revenue, in the currency unit of the source.",
                        ),
                        f(
                            "year_established",
                            Int,
                            false,
                            "Year the company was founded.",
                        ),
                        f(
                            "location",
                            Text,
                            false,
                            "Headquarters location (country or city).",
                        ),
                        f("parent_id", Ref(Entity::Account), false, "Parent company."),
                        f("owner_id", Ref(Entity::User), false, "Account owner."),
                        f(
                            "created_at",
                            DateTime,
                            false,
                            "When the account was created in the CRM.",
                        ),
                    ]
                }
            }
            Entity::Contact => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f(
                            "account_id",
                            Ref(Entity::Account),
                            false,
                            "Company the contact works for.",
                        ),
                        f("name", Text, false, "Full name."),
                        f("email", Text, false, "Email address."),
                        f("title", Text, false, "Job title."),
                        f(
                            "seniority",
                            Enum(SENIORITIES),
                            false,
                            "Seniority of the title.",
                        ),
                        f(
                            "created_at",
                            DateTime,
                            false,
                            "When the contact was created.",
                        ),
                    ]
                }
            }
            Entity::Campaign => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("name", Text, true, "Campaign name."),
                        f(
                            "channel",
                            Text,
                            false,
                            "Channel (webinar, paid search, event...).",
                        ),
                        f("started_at", Date, false, "First day."),
                        f("ended_at", Date, false, "Last day."),
                        f("cost", Float, false, "Total cost."),
                    ]
                }
            }
            Entity::Lead => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("created_at", DateTime, true, "When the lead arrived."),
                        f(
                            "source",
                            Text,
                            false,
                            "Lead source or channel (web form, chat, referral...).",
                        ),
                        f(
                            "campaign_id",
                            Ref(Entity::Campaign),
                            false,
                            "Campaign that produced the lead.",
                        ),
                        f("company", Text, false, "Company named by the lead."),
                        f("contact_name", Text, false, "Name of the person."),
                        f("email", Text, false, "Email of the person."),
                        f("title", Text, false, "Job title of the person."),
                        f("inquiry", Text, false, "Free text of the inquiry."),
                        f(
                            "owner_id",
                            Ref(Entity::User),
                            false,
                            "Rep the lead is assigned to.",
                        ),
                        f(
                            "first_response_at",
                            DateTime,
                            false,
                            "First response by a person (response time = this - created_at).",
                        ),
                        f("status", Enum(LEAD_STATUSES), false, "Lead status."),
                        f(
                            "converted_at",
                            DateTime,
                            false,
                            "When the lead was converted.",
                        ),
                        f(
                            "disqualified_at",
                            DateTime,
                            false,
                            "When the lead was disqualified.",
                        ),
                        f(
                            "account_id",
                            Ref(Entity::Account),
                            false,
                            "Matched or converted account.",
                        ),
                        f(
                            "contact_id",
                            Ref(Entity::Contact),
                            false,
                            "Matched or converted contact.",
                        ),
                    ]
                }
            }
            Entity::Opportunity => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("name", Text, false, "Opportunity name."),
                        f(
                            "account_id",
                            Ref(Entity::Account),
                            false,
                            "Account; empty for orphan deals.",
                        ),
                        f("owner_id", Ref(Entity::User), true, "Owning rep."),
                        f(
                            "lead_id",
                            Ref(Entity::Lead),
                            false,
                            "Lead the opportunity was converted from.",
                        ),
                        f(
                            "amount",
                            Float,
                            false,
                            "Deal amount (for closed-won deals, the booked value).",
                        ),
                        f("stage", Enum(STAGES), true, "Current stage."),
                        f(
                            "forecast_category",
                            Enum(FORECAST_CATEGORIES),
                            false,
                            "Rep-entered forecast category.",
                        ),
                        f(
                            "probability",
                            Float,
                            false,
                            "CRM probability, 0..1 (a percentage above 1 is divided by 100).",
                        ),
                        f(
                            "created_at",
                            DateTime,
                            false,
                            "When the opportunity was created or engaged.",
                        ),
                        f(
                            "close_date",
                            Date,
                            false,
                            "Expected close date (for closed deals, the close date).",
                        ),
                        f(
                            "closed_at",
                            Date,
                            false,
                            "Actual close date of a closed deal.",
                        ),
                        f("loss_reason", Text, false, "Why a lost deal was lost."),
                        f("lead_source", Text, false, "Original lead source."),
                        f("type", Text, false, "New business, expansion, renewal..."),
                        f(
                            "currency",
                            Currency,
                            false,
                            "ISO 4217 code of the amount; empty = the corporate currency.",
                        ),
                        f(
                            "state_at",
                            DateTime,
                            false,
                            "When the current values were observed: set by the importer (the row's effective time, else the import's --as-of); a file cannot set it.",
                        ),
                    ]
                }
            }
            Entity::OpportunityProduct => {
                const {
                    &[
                        f(
                            "opportunity_id",
                            Ref(Entity::Opportunity),
                            true,
                            "The opportunity.",
                        ),
                        f("product_id", Ref(Entity::Product), true, "The product."),
                        f("quantity", Float, false, "Units."),
                        f("unit_price", Float, false, "Price per unit."),
                        f("amount", Float, false, "Line total."),
                        f(
                            "currency",
                            Currency,
                            false,
                            "ISO 4217 code of the prices; empty = the corporate currency.",
                        ),
                    ]
                }
            }
            Entity::OpportunityHistory => {
                const {
                    &[
                        f(
                            "opportunity_id",
                            Ref(Entity::Opportunity),
                            true,
                            "The opportunity.",
                        ),
                        f("field", Enum(HISTORY_FIELDS), true, "Which field changed."),
                        f("changed_at", DateTime, true, "When it changed."),
                        f(
                            "seq",
                            Int,
                            false,
                            "Order of changes of the field at the same instant (0, 1...); given by the importer from the order of the file when absent.",
                        ),
                        f(
                            "value",
                            Text,
                            false,
                            "The value from then on, in the field's own format (empty = cleared).",
                        ),
                        f(
                            "old_value",
                            Text,
                            false,
                            "The value before, when the source knows it.",
                        ),
                    ]
                }
            }
            Entity::Activity => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f(
                            "type",
                            Enum(ACTIVITY_TYPES),
                            true,
                            "call, email, meeting, sms or social.",
                        ),
                        f("direction", Enum(DIRECTIONS), false, "inbound or outbound."),
                        f("occurred_at", DateTime, true, "When it happened."),
                        f(
                            "duration_s",
                            Int,
                            false,
                            "Duration in seconds (calls, meetings).",
                        ),
                        f(
                            "outcome",
                            Enum(ACTIVITY_OUTCOMES),
                            false,
                            "connected, replied, bounced...; a reply whose sense is known is replied_positive, replied_negative (\"remove me\") or meeting_booked; unsubscribed for an opt-out.",
                        ),
                        f("subject", Text, false, "Subject or title."),
                        f(
                            "template_id",
                            Text,
                            false,
                            "Email or message template: in a message test, the variant sent.",
                        ),
                        f(
                            "sequence_id",
                            Text,
                            false,
                            "Sales-engagement sequence (cadence); `next-best-action` for an activity logged from pipewise's list.",
                        ),
                        f(
                            "sequence_step",
                            Int,
                            false,
                            "Step number within the sequence.",
                        ),
                        f(
                            "selection_probability",
                            Probability,
                            false,
                            "In a message test, the probability the sending policy gave this variant when it chose it (0-1], as `pipewise messages choose` gives it: what lets any other policy be evaluated from the logs.",
                        ),
                        f("user_id", Ref(Entity::User), false, "Rep who performed it."),
                        f("lead_id", Ref(Entity::Lead), false, "Lead it was about."),
                        f(
                            "opportunity_id",
                            Ref(Entity::Opportunity),
                            false,
                            "Opportunity it was about.",
                        ),
                        f(
                            "contact_id",
                            Ref(Entity::Contact),
                            false,
                            "Contact it involved.",
                        ),
                        f(
                            "account_id",
                            Ref(Entity::Account),
                            false,
                            "Account it involved.",
                        ),
                    ]
                }
            }
            Entity::Conversation => {
                const {
                    &[
                        f(
                            "id",
                            Text,
                            true,
                            "Stable external id (defaults to the transcript file name).",
                        ),
                        f(
                            "started_at",
                            DateTime,
                            false,
                            "When the call or meeting started.",
                        ),
                        f("duration_s", Int, false, "Length in seconds."),
                        f("title", Text, false, "Meeting title."),
                        f(
                            "activity_id",
                            Ref(Entity::Activity),
                            false,
                            "The call or meeting activity.",
                        ),
                        f(
                            "opportunity_id",
                            Ref(Entity::Opportunity),
                            false,
                            "Opportunity discussed.",
                        ),
                        f("lead_id", Ref(Entity::Lead), false, "Lead discussed."),
                        f("user_id", Ref(Entity::User), false, "Rep on the call."),
                        f("source_file", Text, false, "File the transcript came from."),
                    ]
                }
            }
            Entity::ConversationTurn => {
                const {
                    &[
                        f(
                            "conversation_id",
                            Ref(Entity::Conversation),
                            true,
                            "The conversation.",
                        ),
                        f("seq", Int, true, "Position of the turn, from 0."),
                        f("speaker", Text, false, "Speaker name as in the transcript."),
                        f(
                            "speaker_role",
                            Enum(SPEAKER_ROLES),
                            false,
                            "rep, customer or other.",
                        ),
                        f(
                            "start_ms",
                            Int,
                            true,
                            "Start, milliseconds from the start of the call.",
                        ),
                        f(
                            "end_ms",
                            Int,
                            true,
                            "End, milliseconds from the start of the call.",
                        ),
                        f(
                            "speech_ms",
                            Int,
                            false,
                            "Milliseconds the speaker spoke: the sum of the turn's cues' own durations, without the silence between cues merged into the turn (empty: the turn speaks throughout, end_ms - start_ms).",
                        ),
                        f("text", Text, false, "What was said."),
                    ]
                }
            }
            Entity::CampaignTouch => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("campaign_id", Ref(Entity::Campaign), true, "The campaign."),
                        f("lead_id", Ref(Entity::Lead), false, "Lead touched."),
                        f(
                            "contact_id",
                            Ref(Entity::Contact),
                            false,
                            "Contact touched.",
                        ),
                        f("touched_at", DateTime, true, "When."),
                        f(
                            "type",
                            Enum(TOUCH_TYPES),
                            false,
                            "sent, opened, clicked, responded...",
                        ),
                    ]
                }
            }
            Entity::UsageEvent => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("account_id", Ref(Entity::Account), true, "Account."),
                        f("occurred_at", DateTime, true, "When."),
                        f(
                            "event",
                            Text,
                            true,
                            "Event name (login, feature used, seats added...).",
                        ),
                        f("product_id", Ref(Entity::Product), false, "Product used."),
                        f("quantity", Float, false, "Count or amount."),
                    ]
                }
            }
            Entity::OutOfOffice => {
                const {
                    &[
                        f("id", Text, true, "Stable external id."),
                        f("user_id", Ref(Entity::User), true, "Who is away."),
                        f(
                            "start_at",
                            DateTime,
                            true,
                            "First instant away (a date alone: its midnight UTC).",
                        ),
                        f(
                            "end_at",
                            DateTime,
                            true,
                            "Back at this instant (a date alone: its midnight UTC, so 2026-08-17 is back on the 17th).",
                        ),
                        f("reason", Text, false, "Holiday, leave, training..."),
                    ]
                }
            }
            Entity::ExchangeRate => {
                const {
                    &[
                        f("currency", Currency, true, "ISO 4217 code of the currency."),
                        f(
                            "valid_from",
                            Date,
                            true,
                            "First day the rate applies (until the next rate of the currency).",
                        ),
                        f(
                            "rate",
                            Float,
                            true,
                            "Units of this currency per one unit of the corporate currency.",
                        ),
                    ]
                }
            }
        }
    }

    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// The column timestamps of this entity are indexed and ranged on (stats, as-of queries).
    pub fn time_field(self) -> Option<&'static str> {
        match self {
            Entity::Lead | Entity::Opportunity | Entity::Account | Entity::Contact => {
                Some("created_at")
            }
            Entity::OpportunityHistory => Some("changed_at"),
            Entity::Activity | Entity::UsageEvent => Some("occurred_at"),
            Entity::Conversation => Some("started_at"),
            Entity::CampaignTouch => Some("touched_at"),
            Entity::Campaign => Some("started_at"),
            Entity::User => Some("hire_date"),
            Entity::OutOfOffice => Some("start_at"),
            _ => None,
        }
    }
}

/// The data-format reference, generated from the schema (docs/data-format.md embeds it).
pub fn markdown_reference() -> String {
    let mut out = String::new();
    for e in Entity::ALL {
        out.push_str(&format!(
            "### `{}` ({}.csv / {}.jsonl)\n\n{}\n\n",
            e.table(),
            e.table(),
            e.table(),
            e.doc()
        ));
        out.push_str(&format!("Key: `{}`.\n\n", e.key().join("`, `")));
        out.push_str("| field | type | required | meaning |\n| --- | --- | --- | --- |\n");
        for fl in e.fields() {
            let ty = match fl.ty {
                Ref(t) => format!("id of `{}`", t.table()),
                Enum(v) => v.values.join(" \\| "),
                TimeZone => "time zone".to_string(),
                WorkingHours => "working hours".to_string(),
                t => format!("{t:?}").to_lowercase(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                fl.name,
                ty,
                if fl.required { "yes" } else { "" },
                fl.doc
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_children() {
        for (i, e) in Entity::ALL.iter().enumerate() {
            for fl in e.fields() {
                if let Ref(parent) = fl.ty {
                    let j = Entity::ALL.iter().position(|x| *x == parent).unwrap();
                    assert!(
                        j <= i,
                        "{}.{} refers to {} imported later",
                        e.table(),
                        fl.name,
                        parent.table()
                    );
                }
            }
        }
    }

    #[test]
    fn keys_are_required_fields() {
        for e in Entity::ALL {
            for k in e.key() {
                let fl = e
                    .field(k)
                    .unwrap_or_else(|| panic!("{} key {k} is not a field", e.table()));
                // A history entry's `seq` is numbered by the importer when absent.
                assert!(
                    fl.required || (e == Entity::OpportunityHistory && *k == "seq"),
                    "{}.{k} is a key and must be required",
                    e.table()
                );
            }
        }
    }

    #[test]
    fn vocabulary_normalises_case_spaces_and_hyphens() {
        assert_eq!(STAGES.normalise(" Closed Won "), Some("closed_won"));
        assert_eq!(STAGES.normalise("closed-lost"), Some("closed_lost"));
        assert_eq!(STAGES.normalise("Engaging"), None);
        assert_eq!(
            Entity::from_table("Opportunities"),
            Some(Entity::Opportunity)
        );
        assert_eq!(Entity::from_table("opportunity"), Some(Entity::Opportunity));
    }
}
