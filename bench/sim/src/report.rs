//! The results table, in Markdown so it can go into a README as printed.

use crate::movement::HomeMovement;
use crate::sim::SimReport;
use std::fmt::Write;

/// One row: which policies, and what they did.
pub struct Row<'a> {
    pub routing: &'a str,
    pub keep_alive: &'a str,
    pub report: &'a SimReport,
}

/// The replay results, one row per (routing, keep-alive) pair.
pub fn results_table(rows: &[Row<'_>]) -> String {
    let mut out = String::new();
    out.push_str(
        "| policy | keep-alive | calls | cold-start rate | warm-hit ratio | dropped | spilled | image pulls \
         | evictions | prewarms | peak in-flight max/mean | reserved memory (MiB) |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let r = row.report;
        let max_peak = r.peak_in_flight.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}% | {:.2}% | {} | {} | {} | {} | {} | {:.2} ({}) | {:.0} |",
            row.routing,
            row.keep_alive,
            r.calls,
            100.0 * r.cold_start_rate(),
            100.0 * r.warm_hit_ratio(),
            r.dropped,
            r.spilled,
            r.image_pulls,
            r.evictions,
            r.prewarms,
            r.peak_load_imbalance(),
            max_peak,
            r.mean_reserved_mib(),
        );
    }
    out
}

/// The home-movement comparison.
pub fn movement_table(m: &HomeMovement, functions: usize, nodes: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| home node moves ({functions} functions, {nodes} nodes) | one node joins | one node leaves |"
    );
    out.push_str("|---|---:|---:|\n");
    let _ = writeln!(
        out,
        "| fjord (rendezvous) | {:.1}% | {:.1}% |",
        100.0 * m.fjord_join,
        100.0 * m.fjord_leave
    );
    let _ = writeln!(
        out,
        "| openwhisk (hash mod N) | {:.1}% | {:.1}% |",
        100.0 * m.openwhisk_join,
        100.0 * m.openwhisk_leave
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_rates_and_peak_ratio() {
        let report = SimReport {
            calls: 200,
            warm_hits: 150,
            cold_starts: 40,
            dropped: 10,
            peak_in_flight: vec![4, 2, 2, 0],
            reserved_mib_ms: 512 * 10_000,
            horizon_ms: 10_000,
            ..SimReport::default()
        };
        let table = results_table(&[Row {
            routing: "fjord",
            keep_alive: "fixed",
            report: &report,
        }]);
        let row = table.lines().nth(2).unwrap();
        assert_eq!(
            row,
            "| fjord | fixed | 200 | 20.00% | 75.00% | 10 | 0 | 0 | 0 | 0 | 2.00 (4) | 512 |"
        );
    }
}
