//! nk-bpf's staged loader against the kernel: open, configure (global
//! variables, autoload, maps handed in or pinned), load; and the verifier's
//! log of a refused program carried in the error, not printed.

use std::path::PathBuf;

use nk_bpf::{run, Object};

use crate::env;
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

const OBJ: &str = "nk_loader.bpf.o";

/// Runs `nk_loader_store` of `o`; returns its return value.
fn store(o: &Object) -> Result<u32, Stop> {
    Ok(run::run(&o.prog("nk_loader_store")?, &mut [], &[])?.retval)
}

pub fn loader(ctx: &Ctx, r: &mut Reporter) {
    r.sub("globals_set_before_load", || -> TResult {
        env::require_root()?;
        let mut o = Object::open(&env::bpf_obj(&ctx.bpf_dir, OBJ)?)?;
        o.set_autoload("nk_loader_refused", false)?;
        o.set_global("nk_cfg_mult", &3u32.to_ne_bytes())?;
        o.set_global("nk_cfg_base", &100u64.to_ne_bytes())?;
        let o = o.load()?;
        check_eq!(store(&o)?, 3, "nk_cfg_mult as the program read it");
        check_eq!(o.map("nk_shared")?.get_u64(0)?, 121, "nk_cfg_base + 7 * 3");
        // The program that was not loaded has no fd, and says so.
        let e = o.prog("nk_loader_refused").unwrap_err();
        check!(e.to_string().contains("autoload off"), "{e}");
        Ok(())
    });
    r.sub("refused_program_carries_the_verifier_log", || -> TResult {
        env::require_root()?;
        let path = env::bpf_obj(&ctx.bpf_dir, OBJ)?;
        let Err(e) = Object::load(&path) else {
            return Err(Stop::Fail(
                "the object loaded with nk_loader_refused autoloaded".into(),
            ));
        };
        let log = e.log().unwrap_or_default();
        // The verifier's own words for the unchecked lookup, and which
        // program it was.
        check!(log.contains("map_value_or_null"), "log: {log}");
        check!(log.contains("nk_loader_refused"), "log: {log}");
        // The message ends with the log's tail: the verifier's summary and
        // libbpf's naming of the program (the verifier's wording of the
        // reason differs between kernels; 7.3 explains over many lines).
        let msg = e.to_string();
        check!(
            msg.contains("processed") && msg.contains("'nk_loader_refused'"),
            "the message's tail shows the verifier's end: {e}"
        );
        // Bad input is named before anything is loaded.
        let mut o = Object::open(&path)?;
        let e = o
            .set_global("nk_cfg_mult", &1u64.to_ne_bytes())
            .unwrap_err();
        check!(
            e.to_string()
                .contains("nk_cfg_mult is 4 bytes, the value 8"),
            "{e}"
        );
        let e = o.set_global("nk_no_such", &[0]).unwrap_err();
        check!(e.to_string().contains("no \"nk_no_such\""), "{e}");
        let e = o.set_autoload("nk_no_such", false).unwrap_err();
        check!(
            e.to_string().contains("nk_loader_store"),
            "names the programs: {e}"
        );
        Ok(())
    });
    r.sub("maps_handed_in_and_pinned", || -> TResult {
        env::require_root()?;
        let path = env::bpf_obj(&ctx.bpf_dir, OBJ)?;
        let open = |mult: u32| -> Result<nk_bpf::OpenObject, Stop> {
            let mut o = Object::open(&path)?;
            o.set_autoload("nk_loader_refused", false)?;
            o.set_global("nk_cfg_mult", &mult.to_ne_bytes())?;
            Ok(o)
        };
        // An agent's map, handed to a second object: what that object's
        // program writes is in the agent's map.
        let a = open(1)?.load()?;
        let shared = a.map("nk_shared")?;
        let mut b = open(2)?;
        b.reuse_map("nk_shared", &shared)?;
        let b = b.load()?;
        check_eq!(store(&b)?, 2, "b's multiplier");
        check_eq!(shared.get_u64(0)?, 14, "b wrote into a's map");
        // Pinned by path: the first load pins, the second reuses the pin.
        let dir = PathBuf::from(format!("/sys/fs/bpf/nk-loader-{}", std::process::id()));
        let pin = dir.join("nk_shared");
        let result = (|| -> TResult {
            let mut c = open(3)?;
            c.pin_map("nk_shared", &pin)?;
            let c = c.load()?;
            check!(pin.exists(), "{} was not pinned", pin.display());
            let mut d = open(4)?;
            d.pin_map("nk_shared", &pin)?;
            let d = d.load()?;
            store(&d)?;
            check_eq!(
                c.map("nk_shared")?.get_u64(0)?,
                28,
                "d wrote into c's pinned map"
            );
            Ok(())
        })();
        let _ = std::fs::remove_file(&pin);
        let _ = std::fs::remove_dir(&dir);
        result
    });
}
