//! Kernel splat detection on the console log. Any splat fails the test
//! that was running when it was printed.

/// Line fragments that start a kernel report. Matched after the
/// `[ time]` prefix is stripped.
const STARTS: &[(&str, &str)] = &[
    ("BUG: ", "BUG"),
    ("WARNING: ", "WARNING"),
    ("------------[ cut here ]------------", "WARNING"),
    ("Oops: ", "Oops"),
    ("general protection fault", "GPF"),
    ("Kernel panic - not syncing", "panic"),
    ("UBSAN: ", "UBSAN"),
    ("KASAN: ", "KASAN"),
    (
        "==================================================================",
        "KASAN",
    ),
    ("possible recursive locking detected", "lockdep"),
    ("possible circular locking dependency detected", "lockdep"),
    ("inconsistent lock state", "lockdep"),
    ("suspicious RCU usage", "lockdep"),
    ("rcu: INFO: ", "RCU stall"),
    ("self-detected stall on CPU", "RCU stall"),
    ("refcount_t: ", "refcount"),
    ("ref_tracker: ", "ref_tracker"),
    ("unregister_netdevice: waiting for", "netdev refcount"),
    ("unreferenced object", "kmemleak"),
    ("INFO: task ", "hung task"),
    ("watchdog: BUG: soft lockup", "soft lockup"),
];

/// Strips the printk time prefix: `[    1.234567] `.
pub fn strip_time(line: &str) -> &str {
    let l = line.trim_start();
    if l.starts_with('[') {
        if let Some(i) = l.find("] ") {
            return &l[i + 2..];
        }
    }
    l
}

/// If `line` starts a splat, its kind.
pub fn classify(line: &str) -> Option<&'static str> {
    let l = strip_time(line);
    // "WARNING: CPU: 0 PID: 1 at ..." and friends; ignore our own markers.
    if l.starts_with("nkdev: ") {
        return None;
    }
    STARTS
        .iter()
        .find(|(p, _)| l.starts_with(p) || (p.len() > 20 && l.contains(p)))
        .map(|(_, k)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_reports() {
        let cases = [
            (
                "[    3.1] WARNING: CPU: 1 PID: 77 at net/core/dev.c:11 foo+0x1/0x2",
                Some("WARNING"),
            ),
            (
                "[    3.1] BUG: KASAN: slab-use-after-free in netkit_xmit+0x12/0x40",
                Some("BUG"),
            ),
            (
                "[    9.0] rcu: INFO: rcu_preempt self-detected stall on CPU",
                Some("RCU stall"),
            ),
            (
                "[    2.0] refcount_t: underflow; use-after-free.",
                Some("refcount"),
            ),
            (
                "[    2.0] ref_tracker: net notrefcnt@00000000 has 1/1 users at",
                Some("ref_tracker"),
            ),
            (
                "[    2.0] WARNING: possible circular locking dependency detected",
                Some("WARNING"),
            ),
            (
                "[    1.0] Kernel panic - not syncing: Attempted to kill init!",
                Some("panic"),
            ),
            ("[    1.0] nkdev: begin 1 netkit_l2", None),
            ("[    1.0] netkit: something ordinary", None),
        ];
        for (l, want) in cases {
            assert_eq!(classify(l), want, "{l}");
        }
    }
}
