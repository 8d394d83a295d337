//! `nkctl`: netkit links and tcx/netkit programs, from the host side.
//!
//! ```text
//! nkctl link add NAME --peer PEER [--mode l2|l3] [--policy forward|blackhole] ...
//! nkctl link show [NAME] [--json]
//! nkctl link set NAME [--mtu N] [--mac MAC] [--up|--down] [--gso-max-size N]
//! nkctl link del NAME
//! nkctl prog attach --dev DEV --hook tcx-ingress|tcx-egress|netkit-primary|netkit-peer
//!                   --obj FILE --prog NAME [--first|--last|--before X|--after X] [--expected-revision N] [--pin PATH]
//! nkctl prog query --dev DEV --hook HOOK [--json]
//! nkctl endpoint add NAME --mode veth|netkit|netkit-l2 --netns NS --addr CIDR [--bpf OBJ [--prog P]]
//! nkctl endpoint del NAME [--netns NS]
//! nkctl prog detach --dev DEV --hook HOOK (--pin PATH | --prog-id ID) [--expected-revision N]
//! nkctl sock destroy --backend ADDR:PORT [--proto tcp|udp|all] [--netns all|PATH]
//!                    [--method bpf|diag] [--dry-run] [--obj FILE]
//! ```

/// bindgen output of bpf/nk_sock_destroy.bpf.h (`cargo xtask bindings`).
#[rustfmt::skip]
#[allow(non_camel_case_types, dead_code, clippy::all)]
mod bpf_records;
mod cli;
mod endpoint;
mod output;
mod sock;

use clap::Parser;

fn main() {
    // Before parsing: a command line clap refuses is still a --json run.
    let json = std::env::args().any(|a| a == "--json");
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            if json && e.use_stderr() {
                // Valid JSON on stdout, the usage text on stderr.
                let msg = e.kind().to_string();
                print!("{}", output::ErrorJson::usage(&msg).render());
            }
            // --help and --version print to stdout and succeed; a usage
            // error prints to stderr.
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                output::exit::USAGE
            } else {
                output::exit::OK
            });
        }
    };
    match cli::run(args) {
        Ok(cli::Done { out, failed }) => {
            print!("{out}");
            if let Some(why) = failed {
                eprintln!("nkctl: {why}");
                std::process::exit(output::exit::PARTIAL);
            }
        }
        Err(e) => {
            if json {
                print!("{}", output::ErrorJson::of(&*e).render());
            }
            eprintln!("nkctl: {e}");
            std::process::exit(output::exit_code(&*e));
        }
    }
}
