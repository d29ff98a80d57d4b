//! The CSV side of an import: reading the file's rows (malformed ones named by their line),
//! finding columns by name, and writing the result CSV (each row, then its status and message).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use csv::{ByteRecord, StringRecord};

use super::ImportOptions;

/// One data row of the file.
pub(super) struct Row {
    /// The fields as read (lossy for bad encoding), echoed in the result CSV.
    pub(super) echo: Vec<String>,
    /// The row's outcome so far: `None` until answered.
    pub(super) outcome: Option<(String, String)>,
}

/// Reads the header and every row; malformed rows get their outcome at once. Returns the good
/// rows' records with their index in `rows`.
#[allow(clippy::type_complexity)]
pub(super) fn read(
    path: &Path,
) -> anyhow::Result<(StringRecord, Vec<Row>, Vec<(usize, StringRecord)>)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: line 1 (the header) is unreadable", path.display()))?
        .clone();
    let mut rows = Vec::new();
    let mut good = Vec::new();
    let mut record = ByteRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                rows.push(Row {
                    echo: Vec::new(),
                    outcome: Some((
                        "MALFORMED".into(),
                        format!("line {line}: unreadable row: {e}"),
                    )),
                });
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let echo = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let outcome = if record.len() != header.len() {
            Some(format!(
                "expected {} columns, found {}",
                header.len(),
                record.len()
            ))
        } else {
            match StringRecord::from_byte_record(record.clone()) {
                Ok(fields) => {
                    good.push((rows.len(), fields));
                    None
                }
                Err(_) => Some("not valid UTF-8".to_owned()),
            }
        };
        rows.push(Row {
            echo,
            outcome: outcome.map(|m| ("MALFORMED".to_owned(), format!("line {line}: {m}"))),
        });
    }
    Ok((header, rows, good))
}

/// Where each column is.
pub(super) struct Columns(HashMap<String, usize>);

impl Columns {
    pub(super) fn new(header: &StringRecord) -> Self {
        Self(
            header
                .iter()
                .enumerate()
                .map(|(i, name)| (name.trim().to_lowercase(), i))
                .collect(),
        )
    }

    pub(super) fn get<'r>(&self, record: &'r StringRecord, name: &str) -> Option<&'r str> {
        self.0.get(name).and_then(|&i| record.get(i)).map(str::trim)
    }

    pub(super) fn required<'r>(
        &self,
        record: &'r StringRecord,
        name: &str,
    ) -> anyhow::Result<&'r str> {
        self.get(record, name)
            .with_context(|| format!("the file has no column {name}"))
    }
}

/// `INVALID_ARGUMENT` for 3, as gRPC names codes.
pub(super) fn code_name(code: i32) -> String {
    let camel = format!("{:?}", tonic::Code::from_i32(code));
    let mut name = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub(super) fn results_path(options: &ImportOptions) -> PathBuf {
    options.results.clone().unwrap_or_else(|| {
        let mut path = options.file.clone().into_os_string();
        path.push(".results.csv");
        path.into()
    })
}

/// The input rows, each followed by its status and message.
pub(super) fn write_results(
    path: &Path,
    header: &StringRecord,
    rows: &[Row],
) -> anyhow::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut first: Vec<&str> = header.iter().collect();
    first.extend(["status", "message"]);
    writer.write_record(&first)?;
    for row in rows {
        let (status, message) = row
            .outcome
            .clone()
            .unwrap_or_else(|| ("NOT_SENT".into(), String::new()));
        let mut record = row.echo.clone();
        record.extend([status, message]);
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}
