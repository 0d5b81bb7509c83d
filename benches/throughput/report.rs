//! The results: a Markdown table, then one machine-readable line per case.

use crate::client::Outcome;

/// One case's results: the gateway's run and, in-process, the raw echo's.
pub struct Row {
    pub name: String,
    pub gateway: Result<Outcome, String>,
    /// `None` when there is no reference (`--url`).
    pub raw: Option<Result<Outcome, String>>,
}

impl Row {
    /// The case failed to run or counted errors.
    pub fn failed(&self) -> bool {
        let bad = |r: &Result<Outcome, String>| r.as_ref().map_or(true, |o| o.errors > 0);
        bad(&self.gateway) || self.raw.as_ref().is_some_and(bad)
    }
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// Prints the table and the `case=...` lines.
pub fn print(rows: &[Row], in_process: bool) {
    println!();
    let mut header = vec![
        "case",
        "frames/s",
        "MiB/s",
        "p50 us",
        "p99 us",
        "errors",
        "min share",
    ];
    if in_process {
        header.extend([
            "allocs/frame",
            "raw fr/s",
            "raw p99",
            "raw errors",
            "vs raw",
        ]);
    }
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                26.max(h.len())
            } else {
                10.max(h.len())
            }
        })
        .collect();
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                out += &format!(" {cell:<w$} |");
            } else {
                out += &format!(" {cell:>w$} |");
            }
        }
        println!("{out}");
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    println!(
        "|{}",
        widths
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 {
                format!("{:-<1$}|", "", w + 2)
            } else {
                format!("{:-<1$}:|", "", w + 1)
            })
            .collect::<String>()
    );
    for row in rows {
        let mut cells = vec![row.name.clone()];
        match &row.gateway {
            Ok(g) => cells.extend([
                format!("{:.0}", g.frames_per_s()),
                format!("{:.2}", g.mib_per_s()),
                format!("{:.1}", g.percentile_us(0.5)),
                format!("{:.1}", g.percentile_us(0.99)),
                g.errors.to_string(),
                format!("{:.2}", g.min_share),
            ]),
            Err(_) => cells.extend(["failed", "-", "-", "-", "-", "-"].map(String::from)),
        }
        if in_process {
            let g = row.gateway.as_ref().ok();
            let r = row.raw.as_ref().and_then(|r| r.as_ref().ok());
            cells.push(opt(g.map(|g| format!("{:.2}", g.allocs_per_frame()))));
            cells.push(opt(r.map(|r| format!("{:.0}", r.frames_per_s()))));
            cells.push(opt(r.map(|r| format!("{:.1}", r.percentile_us(0.99)))));
            cells.push(match &row.raw {
                Some(Ok(r)) => r.errors.to_string(),
                Some(Err(_)) => "failed".into(),
                None => "-".into(),
            });
            cells.push(opt(g.zip(r).map(|(g, r)| {
                format!("{:.2}", g.frames_per_s() / r.frames_per_s())
            })));
        }
        line(&cells);
    }
    println!();
    for row in rows {
        let name = &row.name;
        let g = match &row.gateway {
            Ok(g) => g,
            Err(e) => {
                println!("case={name} failed=1 error={e:?}");
                continue;
            }
        };
        let mut out = format!(
            "case={name} frames_per_s={:.0} MiB_per_s={:.2} p50_us={:.1} p99_us={:.1} errors={} min_conn_share={:.3}",
            g.frames_per_s(),
            g.mib_per_s(),
            g.percentile_us(0.5),
            g.percentile_us(0.99),
            g.errors,
            g.min_share
        );
        if in_process {
            out += &format!(" allocs_per_frame={:.3}", g.allocs_per_frame());
        }
        match &row.raw {
            Some(Ok(r)) => {
                out += &format!(
                    " raw_frames_per_s={:.0} raw_p50_us={:.1} raw_p99_us={:.1} raw_allocs_per_frame={:.3} raw_errors={} ratio_vs_raw={:.3}",
                    r.frames_per_s(),
                    r.percentile_us(0.5),
                    r.percentile_us(0.99),
                    r.allocs_per_frame(),
                    r.errors,
                    g.frames_per_s() / r.frames_per_s()
                );
            }
            Some(Err(e)) => out += &format!(" raw_failed=1 raw_error={e:?}"),
            None => {}
        }
        println!("{out}");
    }
}
