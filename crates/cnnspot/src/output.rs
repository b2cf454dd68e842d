//! Printing scores as a table, CSV or JSON lines.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use cnnspot_core::Score;

/// Prints a whole report on standard output; `what` names it in the error.
pub fn print_stdout(text: &str, what: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .with_context(|| format!("cannot write {what} to standard output"))
}

/// How results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Writes one row per file as results arrive.
pub struct RowWriter<W: Write> {
    format: Format,
    threshold: f32,
    out: W,
}

#[derive(serde::Serialize)]
struct Row<'a> {
    path: &'a str,
    probability: Option<f32>,
    logit: Option<f32>,
    width: Option<u32>,
    height: Option<u32>,
    synthetic: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<W: Write> RowWriter<W> {
    pub fn new(format: Format, threshold: f32, out: W) -> Self {
        RowWriter {
            format,
            threshold,
            out,
        }
    }

    /// The header, for formats that have one.
    pub fn header(&mut self) -> Result<()> {
        match self.format {
            Format::Table => writeln!(
                self.out,
                "{:>11}  {:>9}  {:>11}  {:<9}  path",
                "probability", "logit", "size", "decision"
            )?,
            Format::Csv => self.csv_record(&[
                "path",
                "probability",
                "logit",
                "width",
                "height",
                "synthetic",
                "error",
            ])?,
            Format::Jsonl => {}
        }
        Ok(())
    }

    /// One CSV line, quoted as the csv crate does, written straight away so
    /// that rows stream out as files are scored.
    fn csv_record<S: AsRef<[u8]>>(&mut self, fields: &[S]) -> Result<()> {
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.write_record(fields)?;
        let line = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.out.write_all(&line)?;
        Ok(())
    }

    /// One file's result.
    pub fn row(&mut self, path: &Path, result: Result<&Score, &str>) -> Result<()> {
        let shown = path.display().to_string();
        let (score, error) = match result {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let synthetic = score.map(|s| s.is_synthetic(self.threshold));
        match self.format {
            Format::Table => match (score, error) {
                (Some(s), _) => writeln!(
                    self.out,
                    "{:>11.6}  {:>9.4}  {:>11}  {:<9}  {shown}",
                    s.probability,
                    s.logit,
                    format!("{}x{}", s.width, s.height),
                    if synthetic == Some(true) {
                        "synthetic"
                    } else {
                        "real"
                    },
                )?,
                (None, e) => writeln!(
                    self.out,
                    "{:>11}  {:>9}  {:>11}  {:<9}  {shown}: {}",
                    "-",
                    "-",
                    "-",
                    "error",
                    e.unwrap_or("")
                )?,
            },
            Format::Csv => {
                let opt = |v: Option<String>| v.unwrap_or_default();
                self.csv_record(&[
                    shown.clone(),
                    opt(score.map(|s| s.probability.to_string())),
                    opt(score.map(|s| s.logit.to_string())),
                    opt(score.map(|s| s.width.to_string())),
                    opt(score.map(|s| s.height.to_string())),
                    opt(synthetic.map(|b| b.to_string())),
                    error.unwrap_or("").to_string(),
                ])?;
            }
            Format::Jsonl => {
                let row = Row {
                    path: &shown,
                    probability: score.map(|s| s.probability),
                    logit: score.map(|s| s.logit),
                    width: score.map(|s| s.width),
                    height: score.map(|s| s.height),
                    synthetic,
                    error,
                };
                serde_json::to_writer(&mut self.out, &row)?;
                writeln!(self.out)?;
            }
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
