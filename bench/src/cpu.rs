//! The CPU time this process has used, for costs per request that a busy machine does not blur.
//!
//! Requests per second on a machine shared with other work swing by ten percent from one
//! second to the next: a burst of someone else's compile takes the cores away from both
//! clients alike, but not always evenly. CPU time counts only the work this process did,
//! so "CPU per request" of two clients measured in turn compares their costs even when
//! their wall times are blurred. The emulator runs in this process, so the figure is
//! client plus server; the server's share is the same for every client, so the
//! difference is the clients'.
//!
//! Linux only: the sum of `/proc/self/task/*/schedstat` (nanoseconds on the CPU, per
//! thread; the runtime's threads live as long as the bench). Elsewhere there is no figure.

use std::time::Duration;

/// CPU time used so far by this process's live threads, or `None` off Linux.
pub fn used() -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut nanos: u64 = 0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        let on_cpu: u64 = stat.split_whitespace().next()?.parse().ok()?;
        nanos = nanos.saturating_add(on_cpu);
    }
    Some(Duration::from_nanos(nanos))
}
