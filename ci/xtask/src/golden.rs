//! `cargo xtask golden`: recaptures nk-netlink's golden netlink traffic
//! from the patched kernel (nlmon + tcpdump in the VM) and checks it in
//! under `rust-userspace/nk-netlink/golden/`; `cargo test` replays it.

use std::fs;

use anyhow::{bail, Context, Result};

use crate::kernel::KernelArgs;
use crate::vm::KvmMode;
use crate::vmtest::{self, VmtestArgs};
use crate::Ctx;

/// The files the capture writes and the replay reads.
const FILES: &[&str] = &["rtnetlink.pcap", "rtnetlink.json"];

#[derive(Clone, Debug, clap::Args)]
pub struct GoldenArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub kvm: KvmMode,
}

pub fn run(ctx: &Ctx, a: &GoldenArgs) -> Result<bool> {
    if a.kernel.base_only {
        bail!("the golden capture needs the series (IFLA_NETKIT_HEADROOM, IFLA_HEADROOM): drop --base-only");
    }
    let args = VmtestArgs {
        golden: true,
        ..VmtestArgs::defaults(a.kernel.clone(), a.kvm)
    };
    let p = vmtest::prepare(ctx, &args)?;
    let r = vmtest::run_prepared(ctx, &args, &p)?;
    r.counts.print();
    if !r.counts.ok() || r.counts.passed != 1 {
        bail!("the capture failed; the checked-in golden files are unchanged");
    }
    // This run's own directory: another run may have moved `latest`.
    let run_dir = r.dir;
    let dest = ctx.root.join("rust-userspace/nk-netlink/golden");
    fs::create_dir_all(&dest)?;
    for f in FILES {
        let from = run_dir.join("out").join(f);
        fs::copy(&from, dest.join(f)).with_context(|| format!("copying {}", from.display()))?;
    }
    // The guest knows its release; the host knows which tree that was.
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(run_dir.join("summary.json"))?)?;
    let k = &summary["kernel"];
    let tree = format!(
        "{} + {} patches from patches/{}/series, profile {}",
        k["origin"].as_str().unwrap_or("?"),
        k["patches"],
        k["series"].as_str().unwrap_or("?"),
        k["profile"].as_str().unwrap_or("?").to_lowercase()
    );
    let path = dest.join("rtnetlink.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    m["tree"] = tree.into();
    fs::write(&path, serde_json::to_string_pretty(&m)? + "\n")?;
    // Replay the new capture now, and rewrite its text dissection (an insta
    // snapshot) so that review shows what changed on the wire.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = std::process::Command::new(cargo)
        .current_dir(&ctx.root)
        .args(["test", "--quiet", "-p", "nk-netlink", "golden"])
        .env("INSTA_UPDATE", "always")
        .status()?;
    if !st.success() {
        bail!("the new capture does not replay: see the test output above");
    }
    eprintln!(
        "==> golden: wrote {} in {} and replayed them; the readable diff is in \
         rust-userspace/nk-netlink/src/golden/snapshots/",
        FILES.join(", "),
        dest.display()
    );
    Ok(true)
}
