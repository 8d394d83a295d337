//! inet_diag_msg payloads of a SOCK_DIAG_BY_FAMILY dump, as `nkctl sock
//! destroy --method diag` reads them: decoding must never panic, and a
//! decoded socket must survive being turned back into a SOCK_DESTROY
//! request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nk_netlink::diag::{decode, destroy_request, Proto};

fuzz_target!(|data: &[u8]| {
    for proto in [Proto::Tcp, Proto::Udp] {
        if let Some(s) = decode(proto, data) {
            let _ = format!("{} {} {s:?}", s.src, s.dst);
            let _ = destroy_request(&s).finish(1);
        }
    }
});
