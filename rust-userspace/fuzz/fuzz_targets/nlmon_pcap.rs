//! pcap files of nlmon captures, as the golden replay reads them: parsing
//! must never panic, and every frame's messages must split cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nk_netlink::golden::pcap;
use nk_netlink::wire::messages;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = pcap::parse(data) {
        for f in frames {
            let _ = messages(&f.data).len();
        }
    }
});
