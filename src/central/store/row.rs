//! Backend-neutral statement parameters and result rows, so every query's
//! SQL and row mapping is written once for SQLite and PostgreSQL.

use super::StoreError;

/// One statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
}

/// One result cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// One result row, read by column index.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, index: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(index)
            .ok_or_else(|| StoreError::Data(format!("result row has no column {index}")))
    }

    /// An integer column.
    pub fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_int(index)?
            .ok_or_else(|| StoreError::Data(format!("column {index} is NULL, expected an integer")))
    }

    /// A nullable integer column.
    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            other => Err(StoreError::Data(format!(
                "column {index} is {other:?}, expected an integer"
            ))),
        }
    }

    /// A text column.
    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?
            .ok_or_else(|| StoreError::Data(format!("column {index} is NULL, expected text")))
    }

    /// A nullable text column.
    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            other => Err(StoreError::Data(format!(
                "column {index} is {other:?}, expected text"
            ))),
        }
    }

    /// A bytes column, taken out of the row.
    pub fn take_bytes(&mut self, index: usize) -> Result<Vec<u8>, StoreError> {
        match self.0.get_mut(index) {
            Some(Cell::Bytes(bytes)) => Ok(std::mem::take(bytes)),
            other => Err(StoreError::Data(format!(
                "column {index} is {other:?}, expected bytes"
            ))),
        }
    }
}

/// Statements of one transaction; the transaction stops (and rolls back) at the
/// first `Step` marked `must_insert` that inserts nothing: the event is a repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub sql: &'static str,
    pub params: Vec<Param>,
    pub must_insert: bool,
}

/// What running a transaction's steps did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepsOutcome {
    Committed,
    /// A `must_insert` step inserted nothing; rolled back.
    Repeat,
}
