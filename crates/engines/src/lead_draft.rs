//! The first reply to an inbound lead, drafted from the inquiry's own
//! details: the product of interest and the pain point
//! ([`crate::lead_policy::inquiry_details`]: a product catalogue lexicon and
//! cue patterns), the company, the industry and the source, put into a
//! template with slots. The draft lists every detail it used and where it
//! came from, and says plainly which it could not find.

use serde::Serialize;

/// One detail a draft used.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DraftDetail {
    /// `product`, `pain_point`, `company`, `industry`, `source` or `first_name`.
    pub slot: String,
    pub value: String,
    /// Where it was read: `inquiry`, `lead` or `account`.
    pub from: String,
}

/// A drafted first reply.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Draft {
    pub lead_id: String,
    pub subject: String,
    pub body: String,
    /// The details put into the draft.
    pub used: Vec<DraftDetail>,
    /// Details looked for and not found (`product`, `pain_point`).
    pub missing: Vec<String>,
    /// Whether the draft names both the product and the pain point.
    pub personal: bool,
    /// `template`, or `llm:MODEL` when a local language model wrote the
    /// body from the same details (`fallback` says why it did not, when
    /// one was asked).
    pub generator: String,
    /// Why the language model's draft was not used (unreachable, an
    /// error, or a reply that left out the product or the pain point):
    /// the template's draft stands.
    pub fallback: Option<String>,
    /// Set when the lead was already answered (the first response's
    /// instant): the draft is then not the first reply it got.
    pub already_answered: Option<String>,
}

/// What a draft is made from.
#[derive(Debug, Clone, Default)]
pub struct DraftInput<'a> {
    pub lead_id: &'a str,
    pub inquiry: &'a str,
    pub contact_name: Option<&'a str>,
    /// The company as the lead gave it, else the account's name.
    pub company: Option<&'a str>,
    pub industry: Option<&'a str>,
    pub source: Option<&'a str>,
    /// The owner's name, to sign with.
    pub rep_name: Option<&'a str>,
    /// The product catalogue's names.
    pub products: &'a [String],
}

/// A pain point turned to the reader: "our reporting" becomes "your
/// reporting", "we keep" "you keep".
fn to_second_person(s: &str) -> String {
    let mut out = Vec::new();
    for w in s.split(' ') {
        let lower = w.to_lowercase();
        let swapped = match lower.as_str() {
            "our" => "your",
            "we" => "you",
            "us" => "you",
            "we're" => "you're",
            "we've" => "you've",
            "ours" => "yours",
            "my" => "your",
            "i" => "you",
            "i'm" => "you're",
            _ => "",
        };
        out.push(if swapped.is_empty() {
            w.to_string()
        } else {
            swapped.to_string()
        });
    }
    let joined = out.join(" ");
    let mut c = joined.chars();
    match c.next() {
        Some(f) if !joined.starts_with("I ") => f.to_lowercase().collect::<String>() + c.as_str(),
        _ => joined,
    }
}

fn source_phrase(source: &str) -> Option<&'static str> {
    match source {
        "webinar" => Some("joining our webinar"),
        "event" => Some("stopping by our stand at the event"),
        "content_download" => Some("downloading our guide"),
        "referral" => Some("the introduction"),
        "chat" => Some("the chat"),
        "web_form" | "web" => Some("your message"),
        "partner" => Some("reaching out through our partner"),
        _ => None,
    }
}

/// Drafts the first reply to a lead.
pub fn draft(input: &DraftInput) -> Draft {
    let d = crate::lead_policy::inquiry_details(input.inquiry, input.products);
    let mut used = Vec::new();
    let mut missing = Vec::new();
    let first_name = input
        .contact_name
        .and_then(|n| n.split_whitespace().next())
        .filter(|n| !n.is_empty());
    if let Some(n) = first_name {
        used.push(DraftDetail {
            slot: "first_name".into(),
            value: n.into(),
            from: "lead".into(),
        });
    }
    let company = input.company.filter(|c| !c.is_empty());
    if let Some(c) = company {
        used.push(DraftDetail {
            slot: "company".into(),
            value: c.into(),
            from: "lead".into(),
        });
    }
    let source = input.source.and_then(source_phrase);
    if let (Some(s), Some(_)) = (input.source, source) {
        used.push(DraftDetail {
            slot: "source".into(),
            value: s.into(),
            from: "lead".into(),
        });
    }
    match &d.product {
        Some(p) => used.push(DraftDetail {
            slot: "product".into(),
            value: p.clone(),
            from: "inquiry".into(),
        }),
        None => missing.push("product".to_string()),
    }
    match &d.pain {
        Some(p) => used.push(DraftDetail {
            slot: "pain_point".into(),
            value: p.clone(),
            from: "inquiry".into(),
        }),
        None => missing.push("pain_point".to_string()),
    }
    let industry = input.industry.filter(|i| !i.is_empty() && *i != "unknown");
    let greeting = format!("Hi {},", first_name.unwrap_or("there"));
    let thanks = match source {
        Some(s) => format!("Thank you for {s}"),
        None => "Thank you for getting in touch".to_string(),
    };
    let about = d
        .product
        .as_ref()
        .map(|p| format!(" and your interest in {p}"))
        .unwrap_or_default();
    let mut body = format!("{greeting}\n\n{thanks}{about}.");
    if let Some(pain) = &d.pain {
        body += &format!(" You mentioned that {}.", to_second_person(pain));
    }
    let who = company.unwrap_or("your team");
    match (&d.product, &d.pain) {
        (Some(p), Some(_)) => {
            body += &format!(" That is exactly the problem {p} is built to solve");
            if let Some(i) = industry {
                body +=
                    &format!(", and I can show you how {who} could use it, as other {i} teams do");
                used.push(DraftDetail {
                    slot: "industry".into(),
                    value: i.into(),
                    from: "account".into(),
                });
            }
            body += ".";
        }
        (Some(p), None) => {
            body += &format!(" I'd be glad to show you what {p} could do for {who}.")
        }
        (None, Some(_)) => {
            body += &format!(" I'd be glad to show you how we could help {who} with that.")
        }
        (None, None) => {
            body += &format!(
                " I'd like to learn what {who} is looking for, so I can point you to the right solution."
            )
        }
    }
    body += "\n\nWould a 20-minute call this week work for you?\n\nBest regards,\n";
    body += input.rep_name.unwrap_or("");
    let subject = match &d.product {
        Some(p) => format!("Re: your inquiry about {p}"),
        None => "Re: your inquiry".to_string(),
    };
    Draft {
        lead_id: input.lead_id.to_string(),
        subject,
        body: body.trim_end().to_string(),
        personal: d.product.is_some() && d.pain.is_some(),
        fallback: None,
        used,
        missing,
        generator: "template".into(),
        already_answered: None,
    }
}

/// The chat messages (system, user) asking a language model for the body
/// of `template`'s reply from the same details: the details used, in their
/// words, and the rules (name the product and the pain point as written,
/// invent nothing, ask for a short call, sign with the rep's name). Only
/// the details the template used are sent, never the whole record.
pub fn llm_prompt(template: &Draft, rep_name: Option<&str>) -> (String, String) {
    let system = "You write the first reply of a B2B sales rep to an inbound inquiry. \
        Write only the e-mail body: a greeting, two to four sentences, a question \
        proposing a short call, and a sign-off with the rep's name. Under 130 words. \
        Use the details given and nothing else: never invent prices, customers, \
        features or figures. Name the product exactly as written, and restate the \
        pain point in the reader's terms."
        .to_string();
    let mut user = String::from("Details of the inquiry:\n");
    for u in &template.used {
        user += &format!("- {}: {}\n", u.slot.replace('_', " "), u.value);
    }
    if !template.missing.is_empty() {
        user += &format!(
            "Not stated in the inquiry: {}.\n",
            template.missing.join(", ").replace('_', " ")
        );
    }
    user += &format!("Rep's name: {}\n", rep_name.unwrap_or("(none)"));
    (system, user)
}

/// Checks a language model's body for `template`'s reply: not empty, at
/// most 2,000 characters, and naming the product and the pain point the
/// template used (its key words, case-insensitive). Errors say what was
/// wrong; the template's body then stands.
pub fn check_llm_body(text: &str, template: &Draft) -> Result<String, String> {
    let body = text.trim();
    if body.is_empty() {
        return Err("the model's reply was empty".into());
    }
    if body.chars().count() > 2_000 {
        return Err(format!(
            "the model's reply was {} characters (at most 2,000)",
            body.chars().count()
        ));
    }
    let lower = body.to_lowercase();
    for u in &template.used {
        match u.slot.as_str() {
            "product" if !lower.contains(&u.value.to_lowercase()) => {
                return Err(format!(
                    "the model's reply did not name the product {}",
                    u.value
                ));
            }
            "pain_point" => {
                // Its content words (four letters or more), most of them.
                let words: Vec<String> = u
                    .value
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| {
                        w.len() >= 4
                            && !matches!(
                                *w,
                                "that" | "with" | "have" | "keep" | "from" | "your" | "ours"
                            )
                    })
                    .map(String::from)
                    .collect();
                let found = words.iter().filter(|w| lower.contains(w.as_str())).count();
                if !words.is_empty() && found * 2 < words.len() {
                    return Err(format!(
                        "the model's reply did not restate the pain point \"{}\"",
                        u.value
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_names_what_the_inquiry_said_and_what_it_could_not_find() {
        let products = vec!["Compliance Pack".to_string(), "Core Platform".to_string()];
        let d = draft(&DraftInput {
            lead_id: "l1",
            inquiry: "Hi, I'm Lena Xu, VP Finance at Vexmer. We're looking at Compliance Pack \
                      because audits take far too much manual work. Can someone walk us through pricing?",
            contact_name: Some("Lena Xu"),
            company: Some("Vexmer"),
            industry: Some("banking"),
            source: Some("webinar"),
            rep_name: Some("Maya Rossi"),
            products: &products,
        });
        assert!(d.personal);
        assert!(d.missing.is_empty());
        assert_eq!(d.subject, "Re: your inquiry about Compliance Pack");
        assert!(d.body.starts_with("Hi Lena,"), "{}", d.body);
        assert!(
            d.body.contains(
                "Thank you for joining our webinar and your interest in Compliance Pack."
            ),
            "{}",
            d.body
        );
        assert!(
            d.body
                .contains("You mentioned that audits take far too much manual work."),
            "{}",
            d.body
        );
        assert!(
            d.body
                .contains("how Vexmer could use it, as other banking teams do"),
            "{}",
            d.body
        );
        assert!(d.body.ends_with("Maya Rossi"));
        let slots: Vec<&str> = d.used.iter().map(|u| u.slot.as_str()).collect();
        for s in [
            "first_name",
            "company",
            "source",
            "product",
            "pain_point",
            "industry",
        ] {
            assert!(slots.contains(&s), "{s} not in {slots:?}");
        }

        let d = draft(&DraftInput {
            lead_id: "l2",
            inquiry: "Please call me back.",
            products: &products,
            ..Default::default()
        });
        assert!(!d.personal);
        assert_eq!(d.missing, ["product", "pain_point"]);
        assert!(d.body.starts_with("Hi there,"));
        assert!(
            d.body.contains("learn what your team is looking for"),
            "{}",
            d.body
        );
    }

    #[test]
    fn pains_are_turned_to_the_reader() {
        assert_eq!(
            to_second_person("our reporting takes days every month"),
            "your reporting takes days every month"
        );
        assert_eq!(
            to_second_person("We keep losing track of renewals"),
            "you keep losing track of renewals"
        );
    }

    #[test]
    fn a_language_model_body_must_name_the_product_and_the_pain() {
        let products = vec!["Compliance Pack".to_string()];
        let t = draft(&DraftInput {
            lead_id: "l1",
            inquiry: "We're looking at Compliance Pack because audits take far too much manual work.",
            contact_name: Some("Ana Lima"),
            products: &products,
            ..Default::default()
        });
        let (system, user) = llm_prompt(&t, Some("Tom Wu"));
        assert!(system.contains("never invent"), "{system}");
        assert!(user.contains("product: Compliance Pack"), "{user}");
        assert!(
            user.contains("pain point: audits take far too much manual work"),
            "{user}"
        );
        assert!(user.contains("Rep's name: Tom Wu"), "{user}");
        let good = "Hi Ana,\n\nThanks for asking about Compliance Pack. Audits that take \
                    far too much manual work are what it removes. Could we talk for 20 minutes?\n\nTom Wu";
        assert!(check_llm_body(good, &t).is_ok());
        let no_product = "Hi Ana, audits take far too much manual work; shall we talk? Tom Wu";
        assert!(
            check_llm_body(no_product, &t)
                .unwrap_err()
                .contains("product")
        );
        let no_pain = "Hi Ana, thanks for asking about Compliance Pack. Shall we talk? Tom Wu";
        assert!(
            check_llm_body(no_pain, &t)
                .unwrap_err()
                .contains("pain point")
        );
        assert!(check_llm_body("  ", &t).unwrap_err().contains("empty"));
    }
}
