//! The process's own figures in the names every Prometheus client library uses
//! (`process_*`, read from /proc/self as the official clients do), and `cemsd_build_info`,
//! so the dashboards and alerts written for any exporter work on cemsd too.

use metrics::gauge;

pub const BUILD_INFO: &str = "cemsd_build_info";
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const OPEN_FDS: &str = "process_open_fds";
pub const MAX_FDS: &str = "process_max_fds";
pub const START_TIME: &str = "process_start_time_seconds";

/// Clock ticks per second of /proc/PID/stat: USER_HZ, fixed at 100 in Linux's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Sets the build and process gauges; a figure /proc does not give is left out.
pub fn refresh() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok() else {
        return;
    };
    if let Some(figures) = StatFigures::parse(&stat) {
        // a counter in Prometheus' sense, but read, not counted: a gauge carries it
        gauge!(CPU_SECONDS).set((figures.utime + figures.stime) as f64 / TICKS_PER_SECOND);
        gauge!(VIRTUAL_MEMORY).set(figures.vsize as f64);
        if let Some(boot) = boot_time() {
            gauge!(START_TIME).set(boot + figures.start_ticks as f64 / TICKS_PER_SECOND);
        }
    }
    if let Some(rss) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(resident_bytes)
    {
        gauge!(RESIDENT_MEMORY).set(rss as f64);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge!(OPEN_FDS).set(entries.count() as f64);
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        gauge!(MAX_FDS).set(soft as f64);
    }
}

/// The fields of /proc/PID/stat that matter here (proc(5)).
#[derive(Debug, PartialEq, Eq)]
struct StatFigures {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
}

impl StatFigures {
    /// The command name (field 2) may hold spaces and parentheses, so fields are counted
    /// from the last ')'.
    fn parse(stat: &str) -> Option<StatFigures> {
        let rest = &stat[stat.rfind(')')? + 1..];
        // field 3 (state) is the first after the name
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(StatFigures {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }
}

fn resident_bytes(status: &str) -> Option<u64> {
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// Seconds since the epoch at boot, the `btime` line of /proc/stat.
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (cemsd (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 75 0 0 20 0 4 0 123456 104857600 5000 18446744073709551615";
        assert_eq!(
            StatFigures::parse(stat),
            Some(StatFigures {
                utime: 250,
                stime: 75,
                start_ticks: 123456,
                vsize: 104857600,
            })
        );
        assert_eq!(StatFigures::parse("4242 (cemsd) S 1"), None);
        assert_eq!(
            resident_bytes("Name:\tcemsd\nVmRSS:\t   27904 kB\n"),
            Some(27904 * 1024)
        );
    }
}
