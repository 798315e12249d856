//! Numbers as people write them: money with its symbol and a magnitude
//! (`$1.2M`, `$45k`, `$9.8k`), probabilities as percentages, points of
//! win rate, durations.

use minijinja::{Environment, State, Value};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("money", money);
    env.add_filter("money_full", money_full);
    env.add_filter("pct", pct);
    env.add_filter("signed_pct", signed_pct);
    env.add_filter("num", num);
    env.add_filter("clock", clock);
    env.add_filter("duration", duration);
    env.add_filter("hours", hours);
    env.add_filter("words", words);
    env.add_filter("plural", plural);
    env.add_filter("markdown", markdown);
}

/// Markdown (a model card) as HTML: tables and strikethrough on; any HTML in
/// the text is shown as text, never passed through.
pub fn markdown(text: String) -> Value {
    use pulldown_cmark::{Event, Options, Parser, html};
    let parser = Parser::new_ext(
        &text,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    Value::from_safe_string(out)
}

fn number(v: &Value) -> Option<f64> {
    if v.is_undefined() || v.is_none() {
        return None;
    }
    f64::try_from(v.clone()).ok().filter(|x| x.is_finite())
}

fn symbol(state: &State) -> String {
    let code = state
        .lookup("currency")
        .filter(|v| !v.is_none() && !v.is_undefined())
        .map(|v| v.to_string());
    match code.as_deref() {
        None => String::new(),
        Some("USD") => "$".into(),
        Some("EUR") => "€".into(),
        Some("GBP") => "£".into(),
        Some("JPY") => "¥".into(),
        Some("INR") => "₹".into(),
        Some(c) => format!("{c} "),
    }
}

/// 1234567.8 → "1,234,568".
pub fn thousands(x: f64) -> String {
    let neg = x < 0.0;
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if neg && out != "0" {
        format!("-{out}")
    } else {
        out
    }
}

/// Money with a magnitude: `$1.2M`, `$450k`, `$12.3k`, `$7.2k`, `$850`; `—`
/// when unknown. One decimal below a hundred of a unit, so a column reads alike.
pub fn compact_money(sym: &str, x: f64) -> String {
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    let body = if a >= 1e9 {
        format!("{:.2}B", a / 1e9)
    } else if a >= 1e8 {
        format!("{:.0}M", a / 1e6)
    } else if a >= 1e6 {
        format!("{:.1}M", a / 1e6)
    } else if a >= 1e5 {
        format!("{:.0}k", a / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", a / 1e3)
    } else {
        thousands(a)
    };
    format!("{sign}{sym}{body}")
}

fn money(state: &State, v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(x) => compact_money(&symbol(state), x),
    }
}

fn money_full(state: &State, v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(x) => format!("{}{}", symbol(state), thousands(x)),
    }
}

/// A probability or share (0-1) as a percentage: `43%`, `<1%`, `>99%`.
fn pct(v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(x) if x > 0.0 && x < 0.005 => "<1%".into(),
        Some(x) if x < 1.0 && x > 0.995 => ">99%".into(),
        Some(x) => format!("{:.0}%", x * 100.0),
    }
}

fn signed_pct(v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(x) => format!("{:+.0}%", x * 100.0),
    }
}

/// A number with `digits` decimals (default 0), thousands separated.
fn num(v: Value, digits: Option<u32>) -> String {
    match number(&v) {
        None => "—".into(),
        Some(x) => match digits.unwrap_or(0) {
            0 => thousands(x),
            d => format!("{x:.*}", d as usize),
        },
    }
}

/// Milliseconds as m:ss.
fn clock(v: Value) -> String {
    let ms = number(&v).unwrap_or(0.0).max(0.0) as i64;
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Seconds as `45 s`, `12 min`, `1 h 05`.
fn duration(v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(s) if s < 60.0 => format!("{s:.0} s"),
        Some(s) if s < 3600.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!(
            "{} h {:02}",
            (s / 3600.0) as i64,
            ((s % 3600.0) / 60.0) as i64
        ),
    }
}

/// Hours as `35 min`, `5.2 h`, `3 days`.
fn hours(v: Value) -> String {
    match number(&v) {
        None => "—".into(),
        Some(h) if h < 1.0 => format!("{:.0} min", h * 60.0),
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.0} days", h / 24.0),
    }
}

/// `snake_case` or `kebab-case` as words: `ahead_of_evidence` → "ahead of evidence".
fn words(v: Value) -> String {
    if v.is_none() || v.is_undefined() {
        return "—".into();
    }
    v.to_string().replace(['_', '-'], " ")
}

/// `n|plural("deal")` → "1 deal", "3 deals".
fn plural(v: Value, noun: String) -> String {
    let n = number(&v).unwrap_or(0.0);
    if (n - 1.0).abs() < f64::EPSILON {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_as_people_write_it() {
        assert_eq!(compact_money("$", 1_234_567.0), "$1.2M");
        assert_eq!(compact_money("$", 23_456_789.0), "$23.5M");
        assert_eq!(compact_money("$", 234_567_890.0), "$235M");
        assert_eq!(compact_money("$", 450_400.0), "$450k");
        assert_eq!(compact_money("$", 12_340.0), "$12.3k");
        assert_eq!(compact_money("$", 9_840.0), "$9.8k");
        assert_eq!(compact_money("$", 850.0), "$850");
        assert_eq!(compact_money("€", -2_500_000_000.0), "-€2.50B");
        assert_eq!(compact_money("", 0.0), "0");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-999.0), "-999");
    }

    #[test]
    fn markdown_renders_and_never_passes_html() {
        let h = markdown(
            "# Card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>x</script>\n\nthen **bold**"
                .into(),
        )
        .to_string();
        assert!(h.contains("<h1>Card</h1>"), "{h}");
        assert!(h.contains("<table>"), "{h}");
        assert!(h.contains("<strong>bold</strong>"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
    }

    #[test]
    fn filters_in_templates() {
        let mut env = Environment::new();
        register(&mut env);
        let r = |src: &str, ctx: Value| env.render_str(src, ctx).unwrap();
        let ctx = minijinja::context! { currency => "EUR", x => 1500000.0, p => 0.4321, n => 1 };
        assert_eq!(r("{{ x|money }}", ctx.clone()), "€1.5M");
        assert_eq!(r("{{ p|pct }}", ctx.clone()), "43%");
        assert_eq!(r("{{ n|plural('contact') }}", ctx.clone()), "1 contact");
        assert_eq!(r("{{ 3|plural('contact') }}", ctx.clone()), "3 contacts");
        assert_eq!(r("{{ none|money }}", ctx.clone()), "—");
        assert_eq!(
            r("{{ 'ahead_of_evidence'|words }}", ctx.clone()),
            "ahead of evidence"
        );
        assert_eq!(r("{{ 0.001|pct }}", ctx.clone()), "<1%");
        assert_eq!(r("{{ 65000|clock }}", ctx.clone()), "1:05");
        let plain = minijinja::context! { x => 98500.0 };
        assert_eq!(r("{{ x|money }}", plain), "98.5k");
    }
}
