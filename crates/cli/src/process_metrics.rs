//! `parapet_build_info` and the standard `process_*` metrics, read from
//! /proc/self at each scrape (a few small files: cheaper than a crate that
//! samples them on a timer, and nothing needs `unsafe`).

use std::fmt::Write as _;

/// The commit this binary was built from (build.rs: `PARAPET_COMMIT` or
/// `git rev-parse`, else "unknown").
pub const COMMIT: &str = env!("PARAPET_COMMIT");

/// Clock ticks per second of /proc times. Linux reports them in USER_HZ,
/// which is 100 on every architecture it supports for user space (reading
/// it with sysconf would need `unsafe`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends the build and process metrics in the Prometheus text format.
pub fn render(text: &mut String) {
    let _ = writeln!(
        text,
        "# HELP parapet_build_info The running build: version and commit.\n\
         # TYPE parapet_build_info gauge\n\
         parapet_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        COMMIT.replace(['"', '\\', '\n'], "_")
    );
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name, which is in parentheses and may hold spaces
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // field N of proc(5) is fields[N - 3] here
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let _ = writeln!(
            text,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            (utime + stime) / TICKS_PER_SECOND
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    if let Some(rss) = kb("VmRSS:") {
        let _ = writeln!(
            text,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Some(vm) = kb("VmSize:") {
        let _ = writeln!(
            text,
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
             # TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {vm}"
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            text,
            "# HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<u64>().ok())
        })
    {
        let _ = writeln!(
            text,
            "# HELP process_max_fds Maximum number of open file descriptors.\n\
             # TYPE process_max_fds gauge\nprocess_max_fds {max}"
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        let _ = writeln!(
            text,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
             # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            boot + start / TICKS_PER_SECOND
        );
    }
}

#[cfg(test)]
#[test]
fn reads_this_process() {
    let mut t = String::new();
    render(&mut t);
    for name in [
        "parapet_build_info{",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(t.contains(&format!("\n{name}")), "{name} missing:\n{t}");
    }
    let rss: f64 = t
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1e5, "a running test has more than 100 kB resident");
}
