//! What `/proc` says about a process: CPU seconds from `stat`, memory from `status`. Linux
//! only; elsewhere (or when a process is gone) the figures read as 0.

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which CPU times of a `stat` line to add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// The process's own user + system time (fields 14 and 15).
    Own,
    /// The user + system time of its waited-for children (fields 16 and 17).
    Children,
}

/// User + system CPU seconds of a `/proc/<pid>/stat` line.
pub fn cpu_seconds(stat: &str, which: Cpu) -> f64 {
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime (14) is 11, cutime (16) is 13.
    let first = match which {
        Cpu::Own => 11,
        Cpu::Children => 13,
    };
    let ticks: f64 = [first, first + 1]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / TICKS_PER_SECOND
}

/// A `kB` line of a `/proc/<pid>/status` text, in MB (0 when missing).
pub fn status_mb(status: &str, key: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds of process `pid` (`"self"` for this one).
pub fn process_cpu_seconds(pid: &str, which: Cpu) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    cpu_seconds(&stat, which)
}

/// Seconds the calling thread has run on a CPU (`/proc/thread-self/schedstat`, nanoseconds):
/// what a measurement costs on a machine shared with other work, where wall time also counts
/// the time others had the cores. 0 where the kernel does not keep it.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// A `kB` line of `/proc/<pid>/status` (`"self"` for this process), in MB.
pub fn process_status_mb(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_mb(&status, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_utime_and_stime_or_the_childrens() {
        let stat =
            "4242 (crowsnest rt) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0 1 2 3";
        assert!((cpu_seconds(stat, Cpu::Own) - 3.0).abs() < 1e-9);
        assert!((cpu_seconds(stat, Cpu::Children) - 0.1).abs() < 1e-9);
        assert_eq!(cpu_seconds("", Cpu::Own), 0.0);
    }

    #[test]
    fn own_stat_parses_to_a_positive_time() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu_seconds("self", Cpu::Own) > 0.0);
    }

    #[test]
    fn status_lines_are_read_in_mb() {
        let status = "Name:\tx\nVmHWM:\t  204800 kB\nVmRSS:\t1024 kB\n";
        assert!((status_mb(status, "VmHWM:") - 200.0).abs() < 1e-9);
        assert_eq!(status_mb(status, "Missing:"), 0.0);
        assert!(process_status_mb("self", "VmHWM:") > 0.0);
    }
}
