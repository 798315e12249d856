#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

// A report-style export through a mapping with the options real exports need:
// the first byte picks the encoding, the decimal separator, the title lines to
// skip and the delimiter; dates and numbers have no named form, so the column
// inference runs. Any input imports whole or changes nothing.
fuzz_target!(|data: &[u8]| {
    let Some((&opts, body)) = data.split_first() else { return };
    let encoding = ["", "encoding = \"windows-1252\"\n", "encoding = \"utf-16le\"\n", "encoding = \"utf-8\"\n"][usize::from(opts & 3)];
    let decimal = ["", "decimal = \",\"\n", "decimal = \".\"\n", ""][usize::from((opts >> 2) & 3)];
    let skip = (opts >> 4) & 3;
    let delimiter = if opts & 64 != 0 { ";" } else { "," };
    let toml = format!(
        "name = \"fuzz report\"\n{encoding}{decimal}[[file]]\ndelimiter = \"{delimiter}\"\nskip_rows = {skip}\nfooter = [\"Grand Totals\", \"Confidential\"]\n\
         [[file.entity]]\nentity = \"opportunities\"\nfields.id = \"Id\"\nfields.owner_id = {{ column = \"Owner\", create_missing = true }}\n\
         fields.stage = \"Stage\"\nfields.amount = \"Amount\"\nfields.currency = \"Currency\"\nfields.close_date = \"Close\"\nfields.created_at = \"Created\"\n"
    );
    let Ok(mapping) = pipewise_ingest::Mapping::from_toml(&toml, "fuzz.toml") else { return };
    common::import_bytes("report.csv", body, |path| pipewise_ingest::Source::Csv {
        path,
        mapping,
        file: 0,
        canonical: false,
    });
});
