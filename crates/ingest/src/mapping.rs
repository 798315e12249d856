//! Mapping files: how the columns and values of any CSV export become pipewise
//! entities, without code. The canonical format is the identity mapping
//! ([`Mapping::canonical`]); the Maven CRM importer is a mapping shipped in
//! `mappings/maven-crm.toml`. The format is documented in docs/data-format.md.

use std::collections::BTreeMap;
use std::path::Path;

use pipewise_core::Entity;
use serde::Deserialize;

use crate::IngestError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Short name, shown in reports.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Extra `strftime` formats tried for every date and date-time cell after
    /// the ISO forms (e.g. `"%m/%d/%Y"` for US exports).
    #[serde(default)]
    pub date_formats: Vec<String>,
    /// The decimal separator of every number column (`"."` or `","`), when
    /// the values do not show it (`1,234`). Inferred per column when absent.
    #[serde(default)]
    pub decimal: Option<String>,
    /// The text encoding of the files (`utf-8`, `windows-1252`, `latin1`,
    /// `utf-16`... any WHATWG label). Default UTF-8; a byte-order mark wins.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Cleansing tables: `[aliases.NAME]` maps a wrong value to the right one.
    /// A field uses one with `clean = "NAME"`; every replacement is reported.
    #[serde(default)]
    pub aliases: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMapping {
    /// File name matched in a directory import; ignored when the file is given
    /// on the command line.
    #[serde(default)]
    pub name: Option<String>,
    /// Field delimiter, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Lines above the header to skip (a report's title and filter lines).
    #[serde(default)]
    pub skip_rows: u64,
    /// A record whose first non-empty cell starts with one of these ends the
    /// data (a report's footer: `"Grand Totals"`, `"Confidential Information"`,
    /// `"Copyright"`); it and every record after it are not read.
    #[serde(default)]
    pub footer: Vec<String>,
    #[serde(rename = "entity")]
    pub entities: Vec<EntityMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityMapping {
    /// Target entity (table name, e.g. `opportunities`).
    pub entity: String,
    /// Field name -> where its value comes from.
    pub fields: BTreeMap<String, FieldSource>,
    /// A row with an empty required field is skipped for this entity (and
    /// counted) instead of being an error. For rows that only sometimes carry
    /// an entity, e.g. a history entry that exists only once a date is set.
    #[serde(default)]
    pub optional: bool,
    /// Keys may repeat across rows (a dimension such as the manager column of
    /// a rep list): repeated rows are upserted, not reported as duplicates.
    #[serde(default)]
    pub repeats: bool,
    /// For snapshot or history reports: the column holding the time at which
    /// the row's values took effect (e.g. `"Edit Date"`). Changes of tracked
    /// opportunity fields are then dated with it instead of the import time.
    #[serde(default)]
    pub effective_at: Option<FieldSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldSource {
    Column(String),
    Spec(FieldSpec),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Source column (header name).
    pub column: Option<String>,
    /// A constant value for every row.
    #[serde(rename = "const")]
    pub constant: Option<String>,
    /// Text with `{Column Name}` placeholders.
    pub template: Option<String>,
    /// Value map applied after cleansing, matched case-insensitively
    /// (e.g. `{ "Closed Won" = "closed_won" }`). Unmapped values pass through
    /// and must then be valid for the field.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Name of an `[aliases]` table to cleanse the value with.
    pub clean: Option<String>,
    /// Extra date formats for this field only.
    #[serde(default)]
    pub formats: Vec<String>,
    /// The decimal separator of this column (`"."` or `","`).
    #[serde(default)]
    pub decimal: Option<String>,
    /// Source values that mean "unknown" (e.g. `["0", "n/a"]`).
    #[serde(default)]
    pub null_if: Vec<String>,
    /// Multiply a number by this (e.g. revenue given in millions: 1000000).
    pub scale: Option<f64>,
    /// Value used when the cell is empty.
    pub default: Option<String>,
    /// For references: find the parent by its `name` instead of its id.
    #[serde(default)]
    pub lookup: Option<String>,
    /// For references: create a minimal parent (id = name = value) when it
    /// does not exist, instead of reporting an error.
    #[serde(default)]
    pub create_missing: bool,
}

impl FieldSource {
    pub fn spec(&self) -> FieldSpec {
        match self {
            FieldSource::Column(c) => FieldSpec {
                column: Some(c.clone()),
                ..Default::default()
            },
            FieldSource::Spec(s) => s.clone(),
        }
    }
}

/// Fields no file gives: the importer sets them (`opportunities.state_at`).
pub fn is_set_by_importer(entity: Entity, field: &str) -> bool {
    entity == Entity::Opportunity && field == "state_at"
}

impl Mapping {
    pub fn from_toml(text: &str, origin: &str) -> Result<Mapping, IngestError> {
        let m: Mapping = toml::from_str(text).map_err(|e| IngestError::Mapping {
            path: origin.into(),
            message: e.to_string(),
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Mapping, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|e| IngestError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The Maven Analytics CRM mapping shipped with pipewise.
    pub fn maven() -> Mapping {
        Self::from_toml(
            include_str!("../../../mappings/maven-crm.toml"),
            "mappings/maven-crm.toml",
        )
        .expect("the shipped Maven mapping is valid (tested)")
    }

    /// The identity mapping of the canonical format for one entity: every
    /// header that names a field is read into it.
    pub fn canonical(entity: Entity) -> Mapping {
        let fields = entity
            .fields()
            .iter()
            .filter(|f| !is_set_by_importer(entity, f.name))
            .map(|f| (f.name.to_string(), FieldSource::Column(f.name.to_string())))
            .collect();
        Mapping {
            name: format!("canonical {}", entity.table()),
            description: String::new(),
            date_formats: Vec::new(),
            decimal: None,
            encoding: None,
            aliases: BTreeMap::new(),
            files: vec![FileMapping {
                name: Some(format!("{}.csv", entity.table())),
                delimiter: None,
                skip_rows: 0,
                footer: Vec::new(),
                entities: vec![EntityMapping {
                    entity: entity.table().into(),
                    fields,
                    optional: false,
                    repeats: false,
                    effective_at: None,
                }],
            }],
        }
    }

    fn validate(&self, origin: &str) -> Result<(), IngestError> {
        let bad = |message: String| {
            Err(IngestError::Mapping {
                path: origin.into(),
                message,
            })
        };
        if let Some(d) = &self.decimal {
            if pipewise_core::number::Decimal::parse(d).is_none() {
                return bad(format!("decimal = {d:?}: expected \".\" or \",\""));
            }
        }
        if let Some(e) = &self.encoding {
            if crate::decode::encoding_for(e).is_none() {
                return bad(format!(
                    "encoding = {e:?} is not an encoding label; expected e.g. utf-8, windows-1252, latin1, utf-16le"
                ));
            }
        }
        if self.files.is_empty() {
            return bad("no [[file]] section: say which entities the file's rows become".into());
        }
        for (fi, file) in self.files.iter().enumerate() {
            if let Some(d) = &file.delimiter {
                if d.len() != 1 {
                    return bad(format!(
                        "file #{}: delimiter must be one ASCII character, got {d:?}",
                        fi + 1
                    ));
                }
            }
            for em in &file.entities {
                let Some(entity) = Entity::from_table(&em.entity) else {
                    let known: Vec<&str> = Entity::ALL.iter().map(|e| e.table()).collect();
                    return bad(format!(
                        "unknown entity {:?}; expected one of {}",
                        em.entity,
                        known.join(", ")
                    ));
                };
                for (name, src) in &em.fields {
                    let Some(field) = entity.field(name) else {
                        let known: Vec<&str> = entity.fields().iter().map(|f| f.name).collect();
                        return bad(format!(
                            "{} has no field {name:?}; its fields are {}",
                            entity.table(),
                            known.join(", ")
                        ));
                    };
                    if is_set_by_importer(entity, name) {
                        return bad(format!(
                            "{}.{name} is set by the importer; to date a row's values, use effective_at",
                            entity.table()
                        ));
                    }
                    let s = src.spec();
                    let n = usize::from(s.column.is_some())
                        + usize::from(s.constant.is_some())
                        + usize::from(s.template.is_some());
                    if n != 1 {
                        return bad(format!(
                            "{}.{name}: give exactly one of column, const or template",
                            entity.table()
                        ));
                    }
                    if let Some(d) = &s.decimal {
                        if pipewise_core::number::Decimal::parse(d).is_none() {
                            return bad(format!(
                                "{}.{name}: decimal = {d:?}: expected \".\" or \",\"",
                                entity.table()
                            ));
                        }
                    }
                    if let Some(c) = &s.clean {
                        if !self.aliases.contains_key(c) {
                            return bad(format!(
                                "{}.{name}: clean = {c:?} but there is no [aliases.{c}] table",
                                entity.table()
                            ));
                        }
                    }
                    if (s.lookup.is_some() || s.create_missing)
                        && !matches!(field.ty, pipewise_core::FieldType::Ref(_))
                    {
                        return bad(format!(
                            "{}.{name}: lookup and create_missing apply to references only",
                            entity.table()
                        ));
                    }
                    if let Some(l) = &s.lookup {
                        if l != "name" && l != "id" {
                            return bad(format!(
                                "{}.{name}: lookup must be \"name\" or \"id\"",
                                entity.table()
                            ));
                        }
                    }
                }
                for k in entity.key() {
                    // A history entry's `seq` is numbered by the importer when not given.
                    if !em.fields.contains_key(*k)
                        && !(entity == Entity::OpportunityHistory && *k == "seq")
                    {
                        return bad(format!("{} needs its key field {k} mapped", entity.table()));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_mappings_are_valid() {
        let m = Mapping::maven();
        assert_eq!(m.files.len(), 4);
        for f in [
            "salesforce-opportunity-history.toml",
            "hubspot-deals.toml",
            "salesforce-data-export.toml",
        ] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../mappings")
                .join(f);
            Mapping::load(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn mistakes_in_a_mapping_are_named() {
        let e = Mapping::from_toml(
            "[[file]]\n[[file.entity]]\nentity = \"deals\"\nfields = { id = \"x\" }\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown entity \"deals\""), "{e}");
        let e = Mapping::from_toml(
            "[[file]]\n[[file.entity]]\nentity = \"opportunities\"\nfields = { id = \"x\", stag = \"y\" }\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no field \"stag\""), "{e}");
        let e = Mapping::from_toml(
            "[[file]]\n[[file.entity]]\nentity = \"teams\"\nfields = { name = \"x\" }\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("key field id"), "{e}");
    }
}
