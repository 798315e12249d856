//! WebVTT transcripts, as Zoom and Microsoft Teams export them.
//!
//! Speakers come from voice tags (`<v Jane Doe>Hello</v>`, Teams) or from a
//! `Name: text` prefix (Zoom). Consecutive cues of the same speaker are one turn.
//! Each cue's timing gives the turn's start and end in milliseconds.

pub use pipewise_core::transcript::{Turn, render_vtt as render};

/// A problem at a line of a transcript (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VttError {
    pub line: u64,
    pub column: usize,
    pub value: String,
    pub message: String,
}

/// Parses a transcript. All malformed cues are reported, not just the first.
pub fn parse(text: &str) -> Result<Vec<Turn>, Vec<VttError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut errors = Vec::new();
    match lines.first() {
        Some(first) if first.starts_with("WEBVTT") => {}
        other => {
            return Err(vec![VttError {
                line: 1,
                column: 1,
                value: other.unwrap_or(&"").chars().take(40).collect(),
                message: "expected the WEBVTT header on the first line".into(),
            }]);
        }
    }
    let mut turns: Vec<Turn> = Vec::new();
    let mut i = 1;
    // Skip the header block.
    while i < lines.len() && !lines[i].trim().is_empty() {
        i += 1;
    }
    while i < lines.len() {
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let block_start = i;
        let mut block_end = i;
        while block_end < lines.len() && !lines[block_end].trim().is_empty() {
            block_end += 1;
        }
        let block = &lines[block_start..block_end];
        i = block_end;
        let head = block[0].trim_start();
        if head.starts_with("NOTE") || head.starts_with("STYLE") || head.starts_with("REGION") {
            continue;
        }
        let (timing_idx, timing) = if block[0].contains("-->") {
            (0, block[0])
        } else if block.len() > 1 && block[1].contains("-->") {
            (1, block[1])
        } else {
            errors.push(VttError {
                line: (block_start + 1) as u64,
                column: 1,
                value: block[0].chars().take(60).collect(),
                message: "expected a cue timing line such as 00:01:02.500 --> 00:01:05.000".into(),
            });
            continue;
        };
        let line_no = (block_start + timing_idx + 1) as u64;
        let (l, r) = timing.split_once("-->").expect("checked");
        let start = parse_ts(l.trim());
        let end_s = r.split_whitespace().next().unwrap_or("");
        let end = parse_ts(end_s);
        let (Some(start), Some(end)) = (start, end) else {
            let (col, value) = if start.is_none() {
                (
                    timing.find(|c: char| !c.is_whitespace()).unwrap_or(0) + 1,
                    l.trim().to_string(),
                )
            } else {
                (timing.find("-->").unwrap_or(0) + 4, end_s.to_string())
            };
            errors.push(VttError {
                line: line_no,
                column: col,
                value,
                message: "expected a timestamp such as 00:01:02.500 or 01:02.500".into(),
            });
            continue;
        };
        if end < start {
            errors.push(VttError {
                line: line_no,
                column: timing.find("-->").unwrap_or(0) + 4,
                value: end_s.to_string(),
                message: "the cue ends before it starts; expected an end time after the start"
                    .into(),
            });
            continue;
        }
        let payload: Vec<&str> = block[timing_idx + 1..].to_vec();
        let (speaker, text) = speaker_and_text(&payload.join("\n"));
        if text.is_empty() && speaker.is_none() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.speaker == speaker && speaker.is_some() => {
                last.end_ms = last.end_ms.max(end);
                if !text.is_empty() {
                    if !last.text.is_empty() {
                        last.text.push(' ');
                    }
                    last.text.push_str(&text);
                }
            }
            _ => turns.push(Turn {
                speaker,
                start_ms: start,
                end_ms: end,
                text,
            }),
        }
    }
    if errors.is_empty() {
        Ok(turns)
    } else {
        Err(errors)
    }
}

/// `hh:mm:ss.ttt` or `mm:ss.ttt` (also with a comma, as SRT writes it).
fn parse_ts(s: &str) -> Option<i64> {
    let s = s.replace(',', ".");
    let (hms, frac) = s.split_once('.')?;
    if frac.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let nums: Vec<i64> = parts
        .iter()
        .map(|p| {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()?;
    let (h, m, sec) = match nums.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if m > 59 || sec > 59 || parts.last()?.len() != 2 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + frac.parse::<i64>().ok()?)
}

fn speaker_and_text(payload: &str) -> (Option<String>, String) {
    let mut speaker = None;
    let mut out = String::new();
    let mut rest = payload;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        if let Some(v) = tag.strip_prefix('v') {
            // <v Name> or <v.class Name>
            let name = v.trim_start_matches(|c: char| c != ' ' && c != '\t').trim();
            if speaker.is_none() && !name.is_empty() {
                speaker = Some(name.to_string());
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    let mut text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ");
    if speaker.is_none() {
        // Zoom: "Jane Doe: text".
        if let Some((name, said)) = text.split_once(": ") {
            let plausible = !name.is_empty()
                && name.len() <= 60
                && name.split_whitespace().count() <= 5
                && !name.contains(['.', '?', '!', ',']);
            if plausible {
                speaker = Some(name.trim().to_string());
                text = said.trim().to_string();
            }
        }
    }
    (speaker, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn teams_voice_tags_and_merged_cues() {
        let vtt = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.200\n<v Ann Rep>Hi, thanks for joining.</v>\n\n\
                   2\n00:00:04.200 --> 00:00:06.000\n<v Ann Rep>How are things?</v>\n\n\
                   00:00:06.500 --> 00:01:10.000\n<v.loud Bob Buyer>Busy.\nWe have a budget problem.</v>\n";
        let t = parse(vtt).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].speaker.as_deref(), Some("Ann Rep"));
        assert_eq!(t[0].text, "Hi, thanks for joining. How are things?");
        assert_eq!((t[0].start_ms, t[0].end_ms), (0, 6000));
        assert_eq!(t[1].speaker.as_deref(), Some("Bob Buyer"));
        assert_eq!(t[1].text, "Busy. We have a budget problem.");
        assert_eq!(t[1].end_ms, 70_000);
    }

    #[test]
    fn zoom_name_prefix() {
        let vtt = "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nAnn Rep: Hello there.\n\n2\n00:00:03.000 --> 00:00:05.000\nBob: Hi. Time: now.\n";
        let t = parse(vtt).unwrap();
        assert_eq!(t[0].speaker.as_deref(), Some("Ann Rep"));
        assert_eq!(t[1].speaker.as_deref(), Some("Bob"));
        assert_eq!(t[1].text, "Hi. Time: now.");
    }

    #[test]
    fn every_bad_cue_is_located() {
        let vtt = "WEBVTT\n\n1\n00:00:xx.000 --> 00:00:03.000\n<v A>a</v>\n\n2\n00:00:05.000 --> 00:00:04.000\n<v B>b</v>\n\nno timing here\n";
        let e = parse(vtt).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (4, 1));
        assert_eq!(e[1].line, 8);
        assert!(e[1].message.contains("ends before it starts"));
        assert_eq!(e[2].line, 11);
        assert!(parse("hello\n").unwrap_err()[0].message.contains("WEBVTT"));
    }

    fn turn() -> impl Strategy<Value = (usize, i64, String)> {
        (
            0usize..3,
            0i64..100_000,
            "[a-zA-Z][a-zA-Z ,.?']{0,60}[a-z?.]",
        )
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(raw in proptest::collection::vec(turn(), 1..30)) {
            let names = ["Ann Rep", "Bob Buyer", "Cy Champion"];
            let mut turns: Vec<Turn> = Vec::new();
            let mut t = 0;
            for (who, len, text) in raw {
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                if turns.last().is_some_and(|l| l.speaker.as_deref() == Some(names[who])) { continue; }
                turns.push(Turn { speaker: Some(names[who].into()), start_ms: t, end_ms: t + len, text });
                t += len + 250;
            }
            prop_assert_eq!(parse(&render(&turns)).unwrap(), turns);
        }

        #[test]
        fn parser_never_panics(s in "WEBVTT\n\n[0-9:.> \n<>/a-zA-Z-]{0,200}") {
            let _ = parse(&s);
        }
    }
}
