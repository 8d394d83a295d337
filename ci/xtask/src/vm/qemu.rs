//! The qemu command line, and the KVM probe.
//!
//! The guest's root is the host's `/`, read-only over virtio-9p (as
//! virtme-ng does): the test binaries, iproute2, bpftool and the BPF
//! objects are used in place, with nothing to pack. The console goes to
//! `console.log` (ttyS0), KTAP to `ktap.log` over a virtio-serial port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Accelerator choice on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KvmMode {
    /// Probe KVM with a short test boot; fall back to TCG if it hangs.
    Auto,
    /// Require KVM.
    On,
    /// Software emulation (TCG).
    Off,
}

/// The accelerator actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything needed to start one VM.
pub struct VmSpec<'a> {
    /// What `-kernel` boots: `vmlinux` through its PVH entry when the
    /// kernel has one (see [`boot_image`]), else the bzImage.
    pub kernel: &'a Path,
    pub init: &'a Path,
    pub plan: &'a Path,
    pub console: &'a Path,
    pub ktap: &'a Path,
    pub mem_mb: u32,
    pub cpus: u32,
    pub accel: Accel,
    pub extra_cmdline: &'a str,
    /// Host directories the guest must see even under its tmpfs mounts.
    pub keep: Vec<PathBuf>,
    /// A host directory the guest may write, mounted at
    /// `nk_init::GUEST_OUT` (artifacts such as `cargo xtask golden`'s pcap).
    pub out: Option<&'a Path>,
    /// A TCG plugin and its arguments (`-plugin`), for `bench --measure
    /// insn`.
    pub plugin: Option<String>,
    /// `-icount shift=N`: guest time advances 2^N ns per instruction, so
    /// the guest's timers fire at the same instruction in every run,
    /// whatever the host's load (TCG only, one host thread).
    pub icount: Option<u32>,
}

/// qemu with no default devices, no network, no display, and exiting
/// instead of rebooting (the guest's reboot ends the run).
fn base_command() -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
        "-nic",
        "none",
    ]);
    c
}

/// The run's qemu. `loglevel=6` keeps KERN_INFO boot chatter off the
/// emulated serial port (0.6-0.9 s of a ~3 s TCG boot) while every
/// notice, warning and error (nk-init's markers, splats) is still
/// printed; `--append loglevel=8` brings the rest back.
pub fn command(spec: &VmSpec) -> Command {
    let mut c = base_command();
    let cmdline = format!(
        "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 loglevel=6 panic=-1 \
         root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=1048576,cache=loose ro \
         init={} nkdev.plan={} nkdev.keep={}{} {}",
        spec.init.display(),
        spec.plan.display(),
        spec.keep.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","),
        if spec.out.is_some() { " nkdev.out=1" } else { "" },
        spec.extra_cmdline
    );
    match spec.accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        // No LA57: with 5-level paging, a 7.x KASAN kernel can report a
        // wild-memory-access at boot when an interrupt lands while
        // identify_boot_cpu() has cleared the boot CPU's feature bits
        // (before alternatives are patched, pgtable_l5_enabled() reads
        // them, so KASAN's shadow bounds briefly assume 4 levels). Seen
        // in 2 of 9 debug boots of 7.3 under load; 0 of 8 with no5lvl.
        // The paging depth is not what nkdev tests.
        Accel::Tcg if spec.icount.is_some() => {
            c.args(["-accel", "tcg,thread=single", "-cpu", "max,la57=off"])
        }
        Accel::Tcg => c.args(["-accel", "tcg,thread=multi", "-cpu", "max,la57=off"]),
    };
    if let Some(shift) = spec.icount {
        // sleep=off: an idle guest jumps to its next timer instead of
        // waiting for it in host time.
        c.arg("-icount")
            .arg(format!("shift={shift},sleep=off,align=off"));
    }
    c.args([
        "-machine",
        "q35",
        "-m",
        &spec.mem_mb.to_string(),
        // One socket per vCPU: with qemu's default (cores of one socket)
        // SeaBIOS's MP table lists only the boot CPU, and this kernel
        // (no ACPI) then runs on one CPU whatever --cpus says.
        "-smp",
        &format!("{0},sockets={0}", spec.cpus),
    ]);
    if let Some(p) = &spec.plugin {
        c.arg("-plugin").arg(p);
    }
    c.arg("-kernel")
        .arg(spec.kernel)
        .arg("-append")
        .arg(cmdline.trim());
    c.arg("-chardev")
        .arg(format!("file,id=con,path={}", spec.console.display()));
    c.args(["-serial", "chardev:con"]);
    c.args(["-device", "virtio-serial-pci,id=vser"]);
    c.arg("-chardev")
        .arg(format!("file,id=ktap,path={}", spec.ktap.display()));
    c.args([
        "-device",
        "virtserialport,bus=vser.0,chardev=ktap,name=nkdev.ktap",
    ]);
    c.args([
        "-fsdev",
        "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
    ]);
    c.args(["-device", "virtio-9p-pci,fsdev=root,mount_tag=/dev/root"]);
    if let Some(out) = spec.out {
        c.arg("-fsdev").arg(format!(
            "local,id=out,path={},security_model=none",
            out.display()
        ));
        c.args(["-device", "virtio-9p-pci,fsdev=out,mount_tag=nkdev.out"]);
    }
    c.stdin(Stdio::null());
    c
}

/// The image to boot. With `CONFIG_PVH`, qemu loads the uncompressed
/// `vmlinux` ELF and enters it at its PVH note: no real-mode setup and no
/// decompression. Under TCG that reaches the kernel's first line in
/// 0.18-0.22 s instead of 0.47-0.54 s for the bzImage (3 runs each).
/// The KASAN (debug) kernel prints nothing at all when entered through
/// PVH here, so it keeps the bzImage.
pub fn boot_image<'a>(build: &Path, bzimage: &'a Path, vmlinux: &'a Path) -> &'a Path {
    let config = fs::read_to_string(build.join(".config")).unwrap_or_default();
    let has = |opt: &str| config.lines().any(|l| l == opt);
    if has("CONFIG_PVH=y") && !has("CONFIG_KASAN=y") && vmlinux.exists() {
        vmlinux
    } else {
        bzimage
    }
}

/// A running qemu that is killed when dropped, so that no qemu outlives
/// the command (errors, panics, early returns). It also dies with us:
/// PR_SET_PDEATHSIG covers a SIGKILLed xtask.
pub struct Qemu {
    child: Option<Child>,
}

impl Qemu {
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<Qemu> {
        let out = fs::File::create(log)?;
        let err = out.try_clone()?;
        cmd.stdout(out).stderr(err);
        // SAFETY: the pre_exec closure only calls the async-signal-safe prctl.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting qemu-system-x86_64")?;
        Ok(Qemu { child: Some(child) })
    }

    /// Exit status if qemu has exited.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match &mut self.child {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Decides the accelerator. `auto` boots `image`, the same image the run
/// will boot (`vmlinux` through PVH, or the bzImage), under KVM and waits
/// for it to reach its init; a guest that does not get there in
/// [`PROBE_SECS`] (as on hosts whose /dev/kvm is PVM-only) means TCG.
/// The verdict is cached per host kernel, qemu version and probe rule.
pub fn choose_accel(
    mode: KvmMode,
    image: &Path,
    cache: &Path,
    scratch: &Path,
) -> Result<(Accel, String)> {
    let kvm_ok = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    match mode {
        KvmMode::Off => return Ok((Accel::Tcg, "TCG (--kvm off)".into())),
        KvmMode::On if !kvm_ok => bail!("--kvm on: /dev/kvm cannot be opened"),
        KvmMode::On => return Ok((Accel::Kvm, "KVM (--kvm on)".into())),
        KvmMode::Auto if !kvm_ok => return Ok((Accel::Tcg, "TCG (no usable /dev/kvm)".into())),
        KvmMode::Auto => {}
    }
    let host = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let sh = xshell::Shell::new()?;
    let qv = xshell::cmd!(sh, "qemu-system-x86_64 --version")
        .quiet()
        .read()
        .unwrap_or_default();
    // The verdict holds for this host kernel, this qemu and this kind of
    // image (an ELF entered through PVH, or a bzImage).
    // PROBE_RULE is in the key: a verdict the old rule (the first console
    // line) cached does not survive the change of rule.
    let key = format!(
        "{PROBE_RULE} {} {} {}",
        host.trim(),
        qv.lines().next().unwrap_or(""),
        image.file_name().unwrap_or_default().to_string_lossy()
    );
    let memo = cache.join("kvm-probe");
    if let Ok(text) = fs::read_to_string(&memo) {
        if let Some((k, v)) = text.trim().rsplit_once('\t') {
            if k == key {
                let accel = if v == "kvm" { Accel::Kvm } else { Accel::Tcg };
                let why = if accel == Accel::Kvm {
                    "KVM (probe passed; cached)".to_string()
                } else {
                    "TCG: the KVM probe boot did not reach init, so /dev/kvm cannot run this guest (cached verdict)".to_string()
                };
                return Ok((accel, why));
            }
        }
    }
    let verdict = probe(image, scratch)?;
    fs::create_dir_all(cache)?;
    fs::write(&memo, format!("{key}\t{}\n", verdict.name()))?;
    let why = match verdict {
        Accel::Kvm => "KVM (the probe boot reached init)".to_string(),
        Accel::Tcg => format!("TCG: the KVM probe boot did not reach init in {PROBE_SECS}s (/dev/kvm opens but cannot run this guest, e.g. kvm_pvm; console: {}); falling back to software emulation", scratch.join("kvm-probe-console.log").display()),
    };
    Ok((verdict, why))
}

/// How long the probe boot may take to reach init. A tinyconfig-based
/// guest gets there in about 1.4 s of guest time even under TCG.
const PROBE_SECS: u64 = 10;

/// Names the rule the cached verdicts were made by.
const PROBE_RULE: &str = "probe:init";

/// Whether the probe boot's console shows the kernel trying its init,
/// which it does only after every initcall ran. The first console line
/// is not enough: on a kvm_pvm host the guest prints "Linux version",
/// then stops with a KVM internal error (an emulation failure on a
/// `lock cmpxchg16b`) before the console is even set up.
fn probe_reached_init(console: &str) -> bool {
    console.contains("Run /nonexistent as init process")
        || console.contains("Requested init /nonexistent failed")
}

fn probe(image: &Path, scratch: &Path) -> Result<Accel> {
    fs::create_dir_all(scratch)?;
    let con: PathBuf = scratch.join("kvm-probe-console.log");
    let _ = fs::remove_file(&con);
    let mut c = base_command();
    c.args([
        "-accel", "kvm", "-cpu", "host", "-m", "256", "-machine", "q35",
    ]);
    c.arg("-kernel").arg(image);
    c.args([
        "-append",
        "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 init=/nonexistent",
    ]);
    c.arg("-chardev")
        .arg(format!("file,id=con,path={}", con.display()));
    c.args(["-serial", "chardev:con"]);
    let mut q = Qemu::spawn(c, &scratch.join("kvm-probe-qemu.log"))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(PROBE_SECS) {
        if probe_reached_init(&fs::read_to_string(&con).unwrap_or_default()) {
            return Ok(Accel::Kvm);
        }
        if q.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    q.kill();
    Ok(Accel::Tcg)
}

#[cfg(test)]
mod tests {
    use super::probe_reached_init;

    /// The console of a KVM probe boot on a kvm_pvm host (2026-12-02):
    /// the first line, then nothing. The old rule took it for a working
    /// KVM, and the run that followed hung before nk-init.
    const PVM_CONSOLE: &str = "\
[    0.000000] Linux version 7.3.4 (nkdev@nkdev) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT nkdev
[    0.000000] Command line: console=ttyS0 earlyp";

    /// The end of the same probe boot under TCG.
    const BOOTED_CONSOLE: &str = "\
[    1.409549] Freeing unused kernel image (rodata/data gap) memory: 736K
[    1.409867] Run /nonexistent as init process
[    1.411434] Kernel panic - not syncing: Requested init /nonexistent failed (error -2).";

    #[test]
    fn probe_needs_the_boot_to_reach_init() {
        assert!(!probe_reached_init(PVM_CONSOLE));
        assert!(!probe_reached_init(""));
        assert!(probe_reached_init(BOOTED_CONSOLE));
        // Either line will do: a console cut short after the panic line.
        assert!(probe_reached_init(
            "Kernel panic - not syncing: Requested init /nonexistent failed (error -2)."
        ));
    }
}
