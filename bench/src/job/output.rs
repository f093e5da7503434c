//! `flood.json` (everything measured) and `flood.svg` (the flood chart) in
//! the `--out` directory. A directory that cannot be created ends the job
//! with status 1; a file that cannot be written is reported and skipped.

use kvfree_rcu_bench::chart;
use kvfree_rcu_bench::report::{self, Results};
use std::path::Path;

pub(crate) fn write(out: &Path, results: &Results) {
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    let json = out.join("flood.json");
    let svg = out.join("flood.svg");
    match report::write_json(&json, results) {
        Ok(()) => println!("\nwrote {}", json.display()),
        Err(e) => eprintln!("cannot write {}: {e}", json.display()),
    }
    let subtitle = format!(
        "Flood: {} objects x {} loop(s) per thread, {} allocator, {} CPU(s); median of {} fresh-process run(s)",
        results.objects, results.loops, results.allocator, results.cpus, results.runs
    );
    match chart::write_svg(&svg, &results.flood, &subtitle) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot write {}: {e}", svg.display()),
    }
}
