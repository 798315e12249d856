//! A column-major table of numbers and categories: what the feature engine
//! produces and the models consume (and what a lead export is read into).

use serde::{Deserialize, Serialize};

/// One column. Missing numbers are NaN; missing categories are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Column {
    Numeric(Vec<f64>),
    Categorical(Vec<Option<String>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_categorical(&self) -> bool {
        matches!(self, Column::Categorical(_))
    }
    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Column {
        match self {
            Column::Numeric(v) => Column::Numeric(idx.iter().map(|&i| v[i]).collect()),
            Column::Categorical(v) => {
                Column::Categorical(idx.iter().map(|&i| v[i].clone()).collect())
            }
        }
    }
    /// A row's value as display text (`None` when missing).
    pub fn display(&self, row: usize) -> Option<String> {
        match self {
            Column::Numeric(v) => v[row].is_finite().then(|| v[row].to_string()),
            Column::Categorical(v) => v[row].clone(),
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub names: Vec<String>,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }
    pub fn push(&mut self, name: impl Into<String>, column: Column) {
        debug_assert!(self.columns.is_empty() || column.len() == self.rows());
        self.names.push(name.into());
        self.columns.push(column);
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.columns[i])
    }
    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Table {
        Table {
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| c.take(idx)).collect(),
        }
    }
    /// Appends the rows of a table with the same columns.
    pub fn extend(&mut self, other: Table) {
        if self.columns.is_empty() {
            *self = other;
            return;
        }
        assert_eq!(self.names, other.names, "tables with different columns");
        for (a, b) in self.columns.iter_mut().zip(other.columns) {
            match (a, b) {
                (Column::Numeric(a), Column::Numeric(b)) => a.extend(b),
                (Column::Categorical(a), Column::Categorical(b)) => a.extend(b),
                _ => panic!("column kinds differ"),
            }
        }
    }
}

/// A delimited text file as read, before any typing: header names and rows of
/// cells, each row with its 1-based line number (for error messages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextTable {
    /// The file's name as shown in messages.
    pub file: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub lines: Vec<u64>,
}

impl TextTable {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// An error about one cell (`row` is an index into `rows`).
    pub fn cell_error(&self, row: usize, column: usize, message: impl Into<String>) -> CellError {
        CellError {
            file: self.file.clone(),
            line: self.lines.get(row).copied().unwrap_or(0),
            column: Some(column + 1),
            column_name: self.headers.get(column).cloned(),
            value: self.rows.get(row).and_then(|r| r.get(column)).cloned(),
            message: message.into(),
        }
    }

    /// An error about a whole column or the file.
    pub fn file_error(&self, message: impl Into<String>) -> CellError {
        CellError {
            file: self.file.clone(),
            line: 0,
            column: None,
            column_name: None,
            value: None,
            message: message.into(),
        }
    }
}

/// One precise problem in a text table: file, line, column, value and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellError {
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: u64,
    /// 1-based column number.
    pub column: Option<usize>,
    pub column_name: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ":")?;
        if let Some(n) = &self.column_name {
            write!(f, " column {n:?}:")?;
        }
        if let Some(v) = &self.value {
            write!(f, " value {v:?}:")?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for CellError {}
