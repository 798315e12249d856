//! Text encodings of input files. Salesforce's Data Export can write
//! ISO-8859-1, Excel saves CSV as Windows-1252, and some tools write UTF-16
//! with a byte-order mark. Files are decoded to UTF-8 as they stream, so
//! line numbers and memory are as for a UTF-8 file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

pub use encoding_rs::Encoding;

/// The encoding a label names (any WHATWG label: `utf-8`, `windows-1252`,
/// `cp1252`, `latin1`, `iso-8859-1`, `utf-16le`, `utf-16be`, `utf-16`...).
/// As in browsers, `latin1` and `iso-8859-1` are Windows-1252, a superset.
pub fn encoding_for(label: &str) -> Option<&'static Encoding> {
    let l = label.trim();
    let l = match l.to_ascii_lowercase().as_str() {
        "cp1252" => "windows-1252",
        "utf16" => "utf-16le",
        _ => l,
    }
    .to_string();
    Encoding::for_label(l.as_bytes())
}

/// Opens a text file as a UTF-8 byte stream. A byte-order mark decides the
/// encoding (and is dropped); otherwise `encoding` when given, else the
/// bytes are passed through as UTF-8 (invalid bytes are then reported where
/// a cell that is read holds them).
pub fn open_text(
    path: &Path,
    encoding: Option<&'static Encoding>,
) -> std::io::Result<Box<dyn Read + Send>> {
    let mut f = File::open(path)?;
    let mut head = [0u8; 3];
    let mut n = 0;
    while n < 3 {
        let got = f.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let bom = Encoding::for_bom(&head[..n]);
    f.seek(SeekFrom::Start(0))?;
    let enc = match bom {
        Some((e, _)) => Some(e),
        None => encoding,
    };
    match enc {
        Some(e) if e != encoding_rs::UTF_8 => Ok(Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(e))
                .bom_override(true)
                .build(BufReader::with_capacity(1 << 16, f)),
        )),
        _ => {
            if let Some((_, len)) = bom {
                f.seek(SeekFrom::Start(len as u64))?;
            }
            Ok(Box::new(f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], enc: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, bytes).unwrap();
        let mut s = String::new();
        open_text(&p, enc.and_then(encoding_for))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn encodings_decode_to_utf8() {
        // "Negociación" in Latin-1 / Windows-1252.
        assert_eq!(read(b"Negociaci\xf3n", Some("latin1")), "Negociación");
        assert_eq!(read(b"\x80 5", Some("cp1252")), "€ 5");
        assert_eq!(read(b"\xef\xbb\xbfid,name", None), "id,name");
        // UTF-16 with a BOM needs no label.
        let mut u16 = vec![0xff, 0xfe];
        for c in "id,ñ".encode_utf16() {
            u16.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(read(&u16, None), "id,ñ");
        assert!(encoding_for("klingon").is_none());
        assert_eq!(encoding_for("ISO-8859-1"), Some(encoding_rs::WINDOWS_1252));
    }
}
