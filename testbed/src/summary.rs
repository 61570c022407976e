//! The line a bench prints for each headline figure, which
//! `scripts/bench.sh` gathers from every bench into one table: the
//! figure, its baseline measured in the same run, their ratio and the
//! goal.

/// The prefix `scripts/bench.sh` looks for.
pub const PREFIX: &str = "summary | ";

/// One figure against its baseline of the same run.
pub struct Figure<'a> {
    /// The item (`2 ESP data path`).
    pub item: &'a str,
    /// What is measured, with its unit.
    pub what: &'a str,
    pub ours: Option<f64>,
    /// What `ours` is held against.
    pub baseline: &'a str,
    pub base: Option<f64>,
    pub goal: &'a str,
}

impl Figure<'_> {
    /// `summary | item | what | ours | baseline = base | ours ÷ base | goal`;
    /// a figure not measured reads `-`.
    pub fn line(&self) -> String {
        let ratio = match (self.ours, self.base) {
            (Some(o), Some(b)) if b > 0.0 => format!("{:.3}", o / b),
            _ => "-".into(),
        };
        format!(
            "{PREFIX}{} | {} | {} | {} = {} | {ratio} | {} |",
            self.item,
            self.what,
            number(self.ours),
            self.baseline,
            number(self.base),
            self.goal
        )
    }

    pub fn print(&self) {
        println!("{}", self.line());
    }
}

/// Three significant digits, no exponent.
fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_reads_as_one_table_row_with_its_ratio() {
        let f = Figure {
            item: "2 ESP",
            what: "TCP Mbit/s",
            ours: Some(574.4),
            baseline: "charon",
            base: Some(221.0),
            goal: "≥ 2000",
        };
        assert_eq!(
            f.line(),
            "summary | 2 ESP | TCP Mbit/s | 574 | charon = 221 | 2.599 | ≥ 2000 |"
        );
        let lost = Figure {
            ours: Some(0.0),
            ..f
        };
        assert!(lost.line().contains("| 0 | charon = 221 | 0.000 |"));
        let missing = Figure { base: None, ..lost };
        assert!(missing.line().contains("| charon = - | - |"));
    }
}
