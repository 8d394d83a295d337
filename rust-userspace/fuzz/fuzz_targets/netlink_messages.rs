//! A receive buffer split into netlink messages, and the extack reader
//! for NLMSG_ERROR payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (h, payload) in nk_netlink::wire::messages(data) {
        let _ = nk_netlink::socket::extack_msg(&h, payload);
        for (_, p) in nk_netlink::wire::Attrs::new(payload) {
            let _ = nk_netlink::wire::Attrs::new(p).count();
        }
    }
});
