//! Cross-checks with the tools kernel developers use: what nkctl creates
//! and attaches, iproute2 (6.15) and bpftool (7.5) must report the same
//! way, and pinned links outlive the nkctl process that made them.

use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;

use serde_json::Value;

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

/// Runs a command inside `ns` (the child inherits the thread's netns).
fn run_in(ns: &Ns, prog: &str, args: &[&str]) -> Result<String, Stop> {
    let out = ns.run(|| Command::new(prog).args(args).output())??;
    if !out.status.success() {
        return Err(Stop::Fail(format!(
            "{prog} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nkctl --json prog query` for nk0's netkit primary list.
fn nk_query(ns: &Ns, nk: &str) -> Result<Value, Stop> {
    let args = [
        "--json",
        "prog",
        "query",
        "--dev",
        "nk0",
        "--hook",
        "netkit-primary",
    ];
    Ok(serde_json::from_str(&run_in(ns, nk, &args)?)?)
}

fn nkctl(ctx: &Ctx) -> Result<String, Stop> {
    let p = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
    Ok(p.display().to_string())
}

pub fn iproute2(ctx: &Ctx, r: &mut Reporter) {
    r.sub("ip_link_show_reports_nkctl_netkit", || -> TResult {
        env::require_root()?;
        let nk = nkctl(ctx)?;
        let policies = ["--policy", "forward", "--peer-policy", "blackhole"];
        let (host, pod) = nkctl_pair(&nk, "l2", &policies)?;
        let j: Value =
            serde_json::from_str(&run_in(&host, "ip", &["-j", "-d", "link", "show", "nk0"])?)?;
        let li = &j[0]["linkinfo"];
        check_eq!(
            li["info_kind"].as_str(),
            Some("netkit"),
            "kind (ip -j -d link show)"
        );
        let d = &li["info_data"];
        check_eq!(d["mode"].as_str(), Some("l2"), "mode: {d}");
        check_eq!(d["type"].as_str(), Some("primary"), "type: {d}");
        check_eq!(d["policy"].as_str(), Some("forward"), "policy: {d}");
        check_eq!(
            d["peer_policy"].as_str(),
            Some("blackhole"),
            "peer policy: {d}"
        );
        let peer: Value =
            serde_json::from_str(&run_in(&pod, "ip", &["-j", "-d", "link", "show", "nk1"])?)?;
        check_eq!(
            peer[0]["linkinfo"]["info_data"]["type"].as_str(),
            Some("peer"),
            "peer type"
        );
        // Our own table must agree.
        let table = run_in(&host, &nk, &["link", "show", "nk0"])?;
        check!(
            table.contains("netkit") && table.contains("l2") && table.contains("primary"),
            "nkctl link show:\n{table}"
        );
        Ok(())
    });
}

pub fn bpftool(ctx: &Ctx, r: &mut Reporter) {
    r.sub(
        "bpftool_lists_nkctl_links_in_order_and_pins_outlive_nkctl",
        || -> TResult {
            env::require_root()?;
            let p = env::netkit_pair(nk_netlink::NetkitMode::L3)?;
            let nk = nkctl(ctx)?;
            let obj = env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?
                .display()
                .to_string();
            // Two levels that do not exist: `prog attach --pin` makes them.
            let top = format!("/sys/fs/bpf/nkdev-test-{}", std::process::id());
            let dir = format!("{top}/links");
            let pins: Vec<String> = (1..=3).map(|i| format!("{dir}/l{i}")).collect();
            let attach = |prog: &str, pin: &str, anchor: &[&str]| -> TResult {
                let mut a = vec![
                    "prog",
                    "attach",
                    "--dev",
                    "nk0",
                    "--hook",
                    "netkit-primary",
                    "--obj",
                    &obj,
                    "--prog",
                    prog,
                    "--pin",
                    pin,
                ];
                a.extend_from_slice(anchor);
                a.push("--json");
                let out = run_in(&p.host, &nk, &a)?;
                let v: serde_json::Value = serde_json::from_str(&out)
                    .map_err(|e| Stop::Fail(format!("prog attach --json: {e}: {out}")))?;
                check_eq!(v["pin"].as_str(), Some(pin), "attach --json pin: {v}");
                check!(
                    v["prog_id"].as_u64().unwrap_or(0) > 0
                        && v["link_id"].as_u64().unwrap_or(0) > 0
                        && v["position"].as_u64().is_some(),
                    "attach --json: {v}"
                );
                Ok(())
            };
            let result = (|| -> TResult {
                attach("nk_order_1", &pins[0], &[])?;
                attach("nk_order_2", &pins[1], &["--first"])?;
                attach("nk_order_3", &pins[2], &["--after", &pins[0]])?;
                // nkctl has exited; the pinned links hold the programs.
                let q: Value = nk_query(&p.host, &nk)?;
                let names: Vec<&str> = q["programs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["name"].as_str())
                    .collect();
                check_eq!(
                    names,
                    vec!["nk_order_2", "nk_order_1", "nk_order_3"],
                    "nkctl query order"
                );
                let ids: Vec<u64> = q["programs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["prog_id"].as_u64())
                    .collect();
                let bt: Value = serde_json::from_str(&run_in(
                    &p.host,
                    "bpftool",
                    &["-j", "net", "show", "dev", "nk0"],
                )?)?;
                let entries = bt[0]["tc"].as_array().cloned().unwrap_or_default();
                let bt_ids: Vec<u64> = entries
                    .iter()
                    .filter_map(|e| e["prog_id"].as_u64())
                    .collect();
                check_eq!(bt_ids, ids, "bpftool net show order (raw: {bt})");
                check!(
                    entries
                        .iter()
                        .all(|e| e["kind"].as_str() == Some("netkit/primary")),
                    "bpftool kinds: {bt}"
                );
                // Without --hook: every hook of the netkit primary, the
                // three programs on the one they were attached to.
                let all: Value = serde_json::from_str(&run_in(
                    &p.host,
                    &nk,
                    &["--json", "prog", "query", "--dev", "nk0"],
                )?)?;
                let counts: Vec<usize> = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|q| q["programs"].as_array().map_or(usize::MAX, Vec::len))
                    .collect();
                check_eq!(counts, vec![0, 0, 3, 0], "query of every hook: {all}");
                Ok(())
            })();
            // A pin detached under the wrong hook is refused, and stays.
            let wrong = (|| -> TResult {
                // `prog detach --pin PIN` under `hook`: its exit code and
                // stderr.
                let detach = |hook: &str, pin: &str| -> Result<(Option<i32>, String), Stop> {
                    let out = p.host.run(|| {
                        Command::new(&nk)
                            .args([
                                "prog", "detach", "--dev", "nk0", "--hook", hook, "--pin", pin,
                            ])
                            .output()
                    })??;
                    Ok((
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    ))
                };
                let (code, err) = detach("netkit-peer", &pins[0])?;
                check_eq!(code, Some(1), "wrong-hook detach exit code: {err}");
                check!(
                    err.contains("the link is attached at netkit primary")
                        && err.contains("nothing detached"),
                    "wrong-hook detach: {err}"
                );
                check!(
                    std::path::Path::new(&pins[0]).exists(),
                    "the pin was removed"
                );
                // A pinned program is not a link: refused by kind, not read
                // as link info.
                let prog_pin = format!("{dir}/prog");
                let o = nk_bpf::Object::load(std::path::Path::new(&obj))?;
                nk_bpf::pin::pin(o.prog("nk_order_1")?, std::path::Path::new(&prog_pin))?;
                let refused = detach("netkit-primary", &prog_pin);
                let _ = std::fs::remove_file(&prog_pin);
                let (code, err) = refused?;
                check_eq!(code, Some(1), "detach of a pinned program: {err}");
                check!(
                    err.contains("is a anon_inode:bpf-prog, not a BPF link"),
                    "detach of a pinned program: {err}"
                );
                Ok(())
            })();
            // Detach through nkctl, which also unpins; then nothing is left.
            for pin in &pins {
                if std::path::Path::new(pin).exists() {
                    run_in(
                        &p.host,
                        &nk,
                        &[
                            "prog",
                            "detach",
                            "--dev",
                            "nk0",
                            "--hook",
                            "netkit-primary",
                            "--pin",
                            pin,
                        ],
                    )?;
                }
            }
            let _ = std::fs::remove_dir(&dir);
            let _ = std::fs::remove_dir(&top);
            result?;
            wrong?;
            let q: Value = nk_query(&p.host, &nk)?;
            check_eq!(
                q["programs"].as_array().map(|a| a.len()),
                Some(0),
                "after detach"
            );
            Ok(())
        },
    );
}

/// `prog attach --pinned PATH` and `--prog-id ID` attach a program that is
/// already loaded, as bpftool's `pinned`/`id` do; bpftool sees the same
/// list, and a missing pin is refused with the syscall and errno.
pub fn prog_sources(ctx: &Ctx, r: &mut Reporter) {
    r.sub("pinned_and_id_sources_match_bpftool", || -> TResult {
        env::require_root()?;
        let p = env::netkit_pair(nk_netlink::NetkitMode::L3)?;
        let nk = nkctl(ctx)?;
        let obj = nk_bpf::Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
        let (a, b) = (obj.prog("nk_order_1")?, obj.prog("nk_order_2")?);
        let (ida, idb) = (a.id()?, b.id()?);
        let pin = format!("/sys/fs/bpf/nkdev-src-{}", std::process::id());
        nk_bpf::pin::pin(&a, std::path::Path::new(&pin))?;
        let hook = ["--dev", "nk0", "--hook", "netkit-peer"];
        let result = (|| -> TResult {
            let out = run_in(
                &p.host,
                &nk,
                &[
                    &["prog", "attach"][..],
                    &hook,
                    &["--pinned", &pin, "--json"],
                ]
                .concat(),
            )?;
            let v: Value = serde_json::from_str(&out)?;
            check_eq!(v["prog_id"].as_u64(), Some(u64::from(ida)), "--pinned: {v}");
            check!(v["link_id"].is_null(), "a program attachment, no link: {v}");
            let idb_s = idb.to_string();
            run_in(
                &p.host,
                &nk,
                &[
                    &["prog", "attach"][..],
                    &hook,
                    &["--prog-id", &idb_s, "--first"],
                ]
                .concat(),
            )?;
            let bt: Value = serde_json::from_str(&run_in(
                &p.host,
                "bpftool",
                &["-j", "net", "show", "dev", "nk0"],
            )?)?;
            let ids: Vec<u64> = bt[0]["tc"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["kind"].as_str() == Some("netkit/peer"))
                .filter_map(|e| e["prog_id"].as_u64())
                .collect();
            check_eq!(
                ids,
                vec![u64::from(idb), u64::from(ida)],
                "bpftool order: {bt}"
            );
            let missing = p.host.run(|| {
                Command::new(&nk)
                    .args(["prog", "attach"])
                    .args(hook)
                    .args(["--pinned", "/sys/fs/bpf/nkdev-no-such-pin"])
                    .output()
            })??;
            let err = String::from_utf8_lossy(&missing.stderr);
            check!(
                !missing.status.success()
                    && err.contains("BPF_OBJ_GET")
                    && err.contains("No such file"),
                "missing pin: {err}"
            );
            Ok(())
        })();
        for id in [ida, idb] {
            let id = id.to_string();
            let r = run_in(
                &p.host,
                &nk,
                &[&["prog", "detach"][..], &hook, &["--prog-id", &id]].concat(),
            );
            if result.is_ok() {
                r?;
            }
        }
        nk_bpf::pin::unpin(std::path::Path::new(&pin))?;
        result
    });
}

/// `nkctl endpoint` in Cilium's three datapath modes: traffic both ways,
/// the endpoint program on the right hook, L3's missing MAC shown as
/// such, and `endpoint del` leaving nothing behind.
pub fn endpoint(ctx: &Ctx, r: &mut Reporter) {
    for mode in ["veth", "netkit", "netkit-l2"] {
        r.sub(
            &format!("endpoint_{}", mode.replace('-', "_")),
            || -> TResult {
                env::require_root()?;
                let host = Ns::new()?;
                env::addr(&host, "lo", "10.250.255.1/32")?;
                let nk = nkctl(ctx)?;
                let obj = env::bpf_obj(&ctx.bpf_dir, "nk_endpoint.bpf.o")?
                    .display()
                    .to_string();
                let ns_name = format!("nkt-{}-{}", std::process::id(), mode);
                let out = run_in(
                    &host,
                    &nk,
                    &[
                        "endpoint",
                        "add",
                        "ep0",
                        "--mode",
                        mode,
                        "--netns",
                        &ns_name,
                        "--addr",
                        "10.250.0.2/32",
                        "--bpf",
                        &obj,
                    ],
                )?;
                let result = (|| -> TResult {
                    if mode == "netkit" {
                        check!(
                            out.contains("no L2 address"),
                            "L3 endpoint output explains the missing MAC: {out}"
                        );
                    } else {
                        check!(
                            out.contains(" mac ") && !out.contains("none"),
                            "L2 endpoint shows a MAC: {out}"
                        );
                    }
                    let pod = Ns {
                        fd: nk_netlink::NetnsFd::named(&ns_name)?,
                    };
                    let pod_ip = std::net::Ipv4Addr::new(10, 250, 0, 2);
                    let host_ip = std::net::Ipv4Addr::new(10, 250, 255, 1);
                    let s = env::listen(&pod, pod_ip)?;
                    env::send_probes(&host, pod_ip, 2)?;
                    env::recv_probes(&s, 2)?;
                    let s = env::listen(&host, host_ip)?;
                    env::send_probes(&pod, host_ip, 2)?;
                    env::recv_probes(&s, 2)?;
                    let hook = if mode == "veth" {
                        "tcx-ingress"
                    } else {
                        "netkit-peer"
                    };
                    let q: Value = serde_json::from_str(&run_in(
                        &host,
                        &nk,
                        &["--json", "prog", "query", "--dev", "ep0", "--hook", hook],
                    )?)?;
                    check_eq!(
                        q["programs"][0]["name"].as_str(),
                        Some("nk_endpoint_fro"),
                        "program on {hook}: {q}"
                    );
                    Ok(())
                })();
                run_in(&host, &nk, &["endpoint", "del", "ep0", "--netns", &ns_name])?;
                result?;
                check!(
                    !std::path::Path::new("/run/netns").join(&ns_name).exists(),
                    "netns removed"
                );
                check!(host.rt()?.link_get("ep0").is_err(), "device removed");
                check!(
                    !std::path::Path::new("/sys/fs/bpf/nkdev/endpoints/ep0").exists(),
                    "pins removed"
                );
                Ok(())
            },
        );
    }
    r.sub(
        "endpoint_bad_input_rejected_before_any_change",
        || -> TResult {
            env::require_root()?;
            let host = Ns::new()?;
            let nk = nkctl(ctx)?;
            for (args, want) in [
                (vec!["--addr", "10.250.0.2"], "needs a prefix length"),
                (vec!["--addr", "10.250.0.2/40"], "longer than 32"),
            ] {
                let mut a = vec![
                    "endpoint", "add", "ep0", "--mode", "netkit", "--netns", "nkt-bad",
                ];
                a.extend(args);
                let out = host.run(|| Command::new(&nk).args(&a).output())??;
                let err = String::from_utf8_lossy(&out.stderr);
                check!(!out.status.success() && err.contains(want), "{a:?}: {err}");
            }
            let out = host.run(|| {
                Command::new(&nk)
                    .args([
                        "endpoint",
                        "add",
                        "a-name-longer-than-15",
                        "--mode",
                        "veth",
                        "--netns",
                        "nkt-bad",
                        "--addr",
                        "10.1.1.1/32",
                    ])
                    .output()
            })??;
            check!(
                String::from_utf8_lossy(&out.stderr).contains("limit is 15"),
                "long name rejected"
            );
            check!(
                !std::path::Path::new("/run/netns/nkt-bad").exists(),
                "no netns was created"
            );
            Ok(())
        },
    );
}

/// `nkctl --json link show NAME` inside `ns`.
fn nk_show(ns: &Ns, nk: &str, name: &str) -> Result<Value, Stop> {
    let j: Value = serde_json::from_str(&run_in(ns, nk, &["--json", "link", "show", name])?)?;
    Ok(j.get(0).cloned().unwrap_or(j))
}

/// `nkctl link add nk0 --peer nk1 --mode MODE EXTRA…` with the peer in a
/// fresh Pod netns (by /proc path); returns (host, pod).
fn nkctl_pair(nk: &str, mode: &str, extra: &[&str]) -> Result<(Ns, Ns), Stop> {
    let host = Ns::new()?;
    let pod = Ns::new()?;
    let pod_path = format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        pod.fd.as_fd().as_raw_fd()
    );
    let mut add = vec!["link", "add", "nk0", "--peer", "nk1", "--mode", mode];
    add.extend_from_slice(extra);
    add.extend_from_slice(&["--peer-netns", &pod_path]);
    run_in(&host, nk, &add)?;
    Ok((host, pod))
}

/// Runtime settings of a Pod's netkit made from the host side with nkctl
/// only (the nkdev series: MTU owned by the primary, head/tailroom by
/// changelink), checked from inside the Pod's netns.
pub fn netkit_runtime(ctx: &Ctx, r: &mut Reporter) {
    r.sub("json_says_what_every_command_did", || -> TResult {
        env::require_root()?;
        let nk = nkctl(ctx)?;
        let host = Ns::new()?;
        let json = |args: &[&str]| -> Result<Value, Stop> {
            let out = run_in(&host, &nk, &[&["--json"][..], args].concat())?;
            serde_json::from_str(&out)
                .map_err(|e| Stop::Fail(format!("nkctl --json {args:?}: not JSON ({e}): {out:?}")))
        };
        let v = json(&["link", "add", "nkj0", "--peer", "nkj1", "--mode", "l3"])?;
        check_eq!(v["added"]["name"].as_str(), Some("nkj0"), "link add: {v}");
        check_eq!(
            v["added"]["netkit"]["mode"].as_str(),
            Some("l3"),
            "link add: {v}"
        );
        let v = json(&["link", "set", "nkj0", "--up"])?;
        check!(
            v["changed"]["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP")),
            "link set --up: {v}"
        );
        let idx = v["changed"]["index"].as_u64();
        let v = json(&["link", "del", "nkj0"])?;
        check_eq!(v["deleted"]["name"].as_str(), Some("nkj0"), "link del: {v}");
        check_eq!(v["deleted"]["ifindex"].as_u64(), idx, "link del: {v}");
        Ok(())
    });
    for mode in ["l2", "l3"] {
        r.sub(
            &format!("{mode}_mtu_set_on_primary_reaches_pod"),
            || -> TResult {
                env::require_root()?;
                let nk = nkctl(ctx)?;
                // The mainline series needs the opt-in; 6.12's ignores it.
                let (host, pod) = nkctl_pair(&nk, mode, &["--mtu", "1400", "--sync", "mtu"])?;
                let peer = nk_show(&pod, &nk, "nk1")?;
                if peer["max_mtu"].as_u64() == Some(65535) {
                    return Err(Stop::Skip(
                        "kernel without netkit ndo_change_mtu (peer max_mtu is 65535)".into(),
                    ));
                }
                check_eq!(peer["mtu"].as_u64(), Some(1400), "peer inherits: {peer}");
                check_eq!(peer["max_mtu"].as_u64(), Some(1400), "peer bound: {peer}");
                run_in(&host, &nk, &["link", "set", "nk0", "--mtu", "9000"])?;
                let peer = nk_show(&pod, &nk, "nk1")?;
                check_eq!(peer["mtu"].as_u64(), Some(9000), "raised: {peer}");
                // The Pod may go lower, never higher; nkctl shows the kernel's
                // extack.
                run_in(&pod, &nk, &["link", "set", "nk1", "--mtu", "1280"])?;
                let out = pod.run(|| {
                    Command::new(&nk)
                        .args(["link", "set", "nk1", "--mtu", "9001"])
                        .output()
                })??;
                let err = String::from_utf8_lossy(&out.stderr);
                check!(!out.status.success(), "peer above primary accepted");
                // A kernel refusal has its own exit code (README).
                check_eq!(out.status.code(), Some(4), "exit code of a kernel refusal");
                check!(
                    err.contains("mtu greater than device maximum") && err.contains("os error 22"),
                    "nkctl error: {err}"
                );
                let prim = nk_show(&host, &nk, "nk0")?;
                check_eq!(prim["mtu"].as_u64(), Some(9000), "primary kept: {prim}");
                Ok(())
            },
        );
    }
    r.sub("headroom_set_at_runtime_reaches_pod", || -> TResult {
        env::require_root()?;
        let nk = nkctl(ctx)?;
        let (host, pod) = nkctl_pair(&nk, "l3", &[])?;
        let prim = nk_show(&host, &nk, "nk0")?;
        if prim["headroom"].is_null() {
            return Err(Stop::Skip(
                "kernel does not dump IFLA_HEADROOM (nkdev series not applied)".into(),
            ));
        }
        check_eq!(prim["headroom"].as_u64(), Some(0), "default: {prim}");
        let set = [
            "link",
            "set",
            "nk0",
            "--headroom",
            "128",
            "--tailroom",
            "16",
        ];
        run_in(&host, &nk, &set)?;
        let peer = nk_show(&pod, &nk, "nk1")?;
        check_eq!(peer["headroom"].as_u64(), Some(128), "peer: {peer}");
        check_eq!(peer["tailroom"].as_u64(), Some(16), "peer: {peer}");
        check_eq!(
            peer["netkit"]["headroom"].as_u64(),
            Some(128),
            "peer: {peer}"
        );
        // Only through the primary.
        let out = pod.run(|| {
            Command::new(&nk)
                .args(["link", "set", "nk1", "--headroom", "64"])
                .output()
        })??;
        let err = String::from_utf8_lossy(&out.stderr);
        check!(
            !out.status.success() && err.contains("only through the primary device"),
            "nkctl on the peer: {err}"
        );
        Ok(())
    });
}
