//! The rows the sections measure and the one table printed at the end, with the machine.

use std::fmt;
use std::time::Duration;

/// A measured quantity with its unit.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    PerSecond(f64),
    Latency(Duration),
    KiB(f64),
    MiB(f64),
    Percent(f64),
}

impl Figure {
    fn value(self) -> f64 {
        match self {
            Self::PerSecond(v) | Self::KiB(v) | Self::MiB(v) | Self::Percent(v) => v,
            Self::Latency(d) => d.as_secs_f64() * 1000.0,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PerSecond(v) => write!(f, "{v:.0}/s"),
            Self::Latency(d) => write!(f, "{:.2} ms", d.as_secs_f64() * 1000.0),
            Self::KiB(v) => write!(f, "{v:.1} KiB"),
            Self::MiB(v) => write!(f, "{v:.1} MiB"),
            Self::Percent(v) => write!(f, "{v:.1}%"),
        }
    }
}

/// What a row should reach: on the ratio when the row has an anchor, else on the figure itself.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtLeast(limit) => value >= limit,
            Self::AtMost(limit) => value <= limit,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Self::AtLeast(limit) => format!(">= {limit}{unit}"),
            Self::AtMost(limit) => format!("<= {limit}{unit}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub section: &'static str,
    pub metric: String,
    pub service: Figure,
    pub anchor: Option<Figure>,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(section: &'static str, metric: impl Into<String>, service: Figure) -> Self {
        Self {
            section,
            metric: metric.into(),
            service,
            anchor: None,
            target: None,
        }
    }

    pub fn against(mut self, anchor: Figure) -> Self {
        self.anchor = Some(anchor);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Service figure over anchor figure.
    pub fn ratio(&self) -> Option<f64> {
        let anchor = self.anchor?.value();
        (anchor > 0.0).then(|| self.service.value() / anchor)
    }

    fn cells(&self) -> [String; 7] {
        let ratio = self.ratio();
        let (target, met) = match self.target {
            None => ("-".to_owned(), "-".to_owned()),
            Some(target) => {
                let (value, unit) = match (ratio, self.anchor) {
                    (Some(ratio), _) => (ratio, "x".to_owned()),
                    (None, _) => (self.service.value(), unit_of(self.service)),
                };
                let met = if target.met(value) { "met" } else { "NOT MET" };
                (target.describe(&unit), met.to_owned())
            }
        };
        [
            self.section.to_owned(),
            self.metric.clone(),
            self.service.to_string(),
            self.anchor.map_or("-".to_owned(), |a| a.to_string()),
            ratio.map_or("-".to_owned(), |r| format!("{r:.2}")),
            target,
            met,
        ]
    }
}

fn unit_of(figure: Figure) -> String {
    match figure {
        Figure::PerSecond(_) => "/s",
        Figure::Latency(_) => " ms",
        Figure::KiB(_) => " KiB",
        Figure::MiB(_) => " MiB",
        Figure::Percent(_) => "%",
    }
    .to_owned()
}

/// Prints the rows as one Markdown table (readable in a terminal; benches/README.md pastes it).
pub fn print_table(rows: &[Row]) {
    let header = [
        "section", "metric", "service", "anchor", "ratio", "target", "met",
    ]
    .map(str::to_owned);
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 7]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&header);
    let rule = widths.map(|w| "-".repeat(w));
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}

/// The machine the figures were measured on.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub database: String,
}

impl Machine {
    pub fn probe(database: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            database,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Machine: {} CPUs ({}), Linux {}, {}",
            self.cpus, self.cpu_model, self.kernel, self.database
        )
    }
}
