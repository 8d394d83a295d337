//! A datapath in miniature: three Pods made with `nkctl endpoint` in
//! Cilium's three modes (netkit L3, netkit L2, veth), a "physical" veth to
//! the outside world with a tcx program, and `bpf/nk_e2e.bpf.c` forwarding
//! Pod to Pod (bpf_redirect_peer where the hook allows, bpf_redirect
//! otherwise) and out of the node with bpf_redirect_neigh.

use std::net::Ipv4Addr;
use std::process::Command;

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object};

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, Ctx};

const WORLD_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 2);

struct Pod {
    dev: &'static str,
    mode: &'static str,
    prog: &'static str,
    ip: Ipv4Addr,
    ns: String,
}

fn nkctl(ctx: &Ctx, host: &Ns, args: &[&str]) -> TResult {
    let nk = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
    let out = host.run(|| Command::new(&nk).args(args).output())??;
    check!(
        out.status.success(),
        "nkctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn probe(from: &Ns, to: &Ns, dst: Ipv4Addr, what: &str) -> TResult {
    let s = env::listen(to, dst)?;
    env::send_probes(from, dst, 2)?;
    env::recv_probes(&s, 2).map_err(|e| match e {
        Stop::Fail(m) => Stop::Fail(format!("{what}: {m}")),
        other => other,
    })
}

pub fn datapath(ctx: &Ctx, r: &mut Reporter) {
    r.sub("netkit_l3_l2_veth_pods_and_world", || -> TResult {
        env::require_root()?;
        let obj_path = env::bpf_obj(&ctx.bpf_dir, "nk_e2e.bpf.o")?;
        let obj_s = obj_path.display().to_string();
        let host = Ns::new()?;
        let world = Ns::new()?;
        let tag = std::process::id();
        let pods = vec![
            Pod {
                dev: "epa",
                mode: "netkit",
                prog: "nk_from_pod_netkit",
                ip: Ipv4Addr::new(10, 250, 0, 2),
                ns: format!("nke-{tag}-a"),
            },
            Pod {
                dev: "epb",
                mode: "netkit-l2",
                prog: "nk_from_pod_netkit",
                ip: Ipv4Addr::new(10, 250, 0, 3),
                ns: format!("nke-{tag}-b"),
            },
            Pod {
                dev: "epc",
                mode: "veth",
                prog: "nk_from_pod_veth",
                ip: Ipv4Addr::new(10, 250, 0, 4),
                ns: format!("nke-{tag}-c"),
            },
        ];
        let mut made = Vec::new();
        let result = (|| -> TResult {
            host.rt()?.veth_add("phys0", "wan0", Some(world.as_ref()))?;
            env::up(&host, "phys0")?;
            env::up(&world, "wan0")?;
            env::addr(&host, "phys0", "192.168.100.1/24")?;
            env::addr(&world, "wan0", "192.168.100.2/24")?;
            env::ip(
                &world,
                &["route", "add", "10.250.0.0/24", "via", "192.168.100.1"],
            )?;
            for p in &pods {
                let cidr = format!("{}/32", p.ip);
                nkctl(
                    ctx,
                    &host,
                    &[
                        "endpoint", "add", p.dev, "--mode", p.mode, "--netns", &p.ns, "--addr",
                        &cidr, "--bpf", &obj_s, "--prog", p.prog,
                    ],
                )?;
                made.push((p.dev, p.ns.clone()));
            }
            // The node's agent: fill the endpoint map, attach from-phys.
            let obj = host.run(|| Object::load(&obj_path))??;
            let eps = obj.map("nk_e2e_eps")?;
            let cfg = obj.map("nk_e2e_cfg")?;
            for p in &pods {
                env::e2e_add_endpoint(&eps, &host, p.dev, &p.ns, p.ip)?;
            }
            let phys = host.rt()?.link_get("phys0")?.index;
            cfg.update(&0u32.to_ne_bytes(), &u64::from(phys).to_ne_bytes())?;
            let at = AttachPoint::Tcx {
                ifindex: phys,
                dir: Direction::Ingress,
            };
            let _from_phys = host
                .run(|| mprog::link_create(&obj.prog("nk_from_phys")?, at, Anchor::Last, None))??;

            let nss: Vec<Ns> = pods
                .iter()
                .map(|p| nk_netlink::NetnsFd::named(&p.ns).map(|fd| Ns { fd }))
                .collect::<Result<_, _>>()?;
            for (i, a) in pods.iter().enumerate() {
                for (j, b) in pods.iter().enumerate() {
                    if i != j {
                        probe(&nss[i], &nss[j], b.ip, &format!("{} -> {}", a.mode, b.mode))?;
                    }
                }
                probe(&nss[i], &world, WORLD_IP, &format!("{} -> world", a.mode))?;
                probe(&world, &nss[i], a.ip, &format!("world -> {}", a.mode))?;
            }
            let n = |k: u32| cfg.get_u64(k);
            let (peer, redir, neigh) = (n(1)?, n(2)?, n(3)?);
            // veth Pod -> 2 Pods and world -> 3 Pods go through
            // redirect_peer; netkit Pods -> 2 Pods each through redirect;
            // every Pod -> world through redirect_neigh. 2 probes each.
            check!(peer >= 2 * 5, "bpf_redirect_peer used {peer} times");
            check!(redir >= 2 * 4, "bpf_redirect used {redir} times");
            check!(neigh >= 2 * 3, "bpf_redirect_neigh used {neigh} times");
            Ok(())
        })();
        for (dev, ns) in made.iter().rev() {
            let _ = nkctl(ctx, &host, &["endpoint", "del", dev, "--netns", ns]);
        }
        env::e2e_remove_pins();
        result
    });
}
