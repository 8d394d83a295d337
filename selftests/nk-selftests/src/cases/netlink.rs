//! nk-netlink's link events against the kernel: what an agent watching
//! RTNLGRP_LINK sees when devices come, change and go.

use std::time::{Duration, Instant};

use nk_netlink::{LinkChange, LinkEvent, LinkEvents};

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, Ctx};

/// Events until one matches `want`, or `secs` pass; the ones seen.
fn wait_for(
    ev: &mut LinkEvents,
    what: &str,
    want: impl Fn(&LinkEvent) -> bool,
) -> Result<Vec<LinkEvent>, Stop> {
    let t = Instant::now();
    let mut seen = Vec::new();
    while t.elapsed() < Duration::from_secs(5) {
        if let Some(e) = ev.next_timeout(Duration::from_millis(500))? {
            let hit = want(&e);
            seen.push(e);
            if hit {
                return Ok(seen);
            }
        }
    }
    Err(Stop::Fail(format!("no event for {what}; saw {seen:?}")))
}

fn named(e: &LinkEvent) -> Option<(&'static str, &str, bool)> {
    match e {
        LinkEvent::New(l) => Some(("new", l.name.as_str(), l.is_up())),
        LinkEvent::Del(l) => Some(("del", l.name.as_str(), l.is_up())),
        _ => None,
    }
}

pub fn events(_: &Ctx, r: &mut Reporter) {
    r.sub("veth_add_up_del_are_seen", || -> TResult {
        env::require_root()?;
        let ns = Ns::new()?;
        let mut ev = ns.run(LinkEvents::subscribe)??;
        ns.rt()?.veth_add("ev0", "ev1", None)?;
        wait_for(&mut ev, "RTM_NEWLINK ev0", |e| {
            named(e).is_some_and(|(k, n, _)| k == "new" && n == "ev0")
        })?;
        let idx = ns.rt()?.link_get("ev0")?.index;
        ns.rt()?.link_set(
            idx,
            &LinkChange {
                up: Some(true),
                ..Default::default()
            },
        )?;
        wait_for(&mut ev, "ev0 up", |e| {
            named(e).is_some_and(|(k, n, up)| k == "new" && n == "ev0" && up)
        })?;
        ns.rt()?.link_del(idx)?;
        // Deleting one end of a pair deletes both.
        let seen = wait_for(&mut ev, "RTM_DELLINK ev1", |e| {
            named(e).is_some_and(|(k, n, _)| k == "del" && n == "ev1")
        })?;
        let all = seen.iter().filter_map(named).collect::<Vec<_>>();
        check!(
            all.iter().any(|(k, n, _)| *k == "del" && *n == "ev0")
                || wait_for(&mut ev, "RTM_DELLINK ev0", |e| {
                    named(e).is_some_and(|(k, n, _)| k == "del" && n == "ev0")
                })
                .is_ok(),
            "no RTM_DELLINK for ev0: {all:?}"
        );
        Ok(())
    });
}
