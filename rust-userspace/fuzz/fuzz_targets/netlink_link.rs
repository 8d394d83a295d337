//! RTM_NEWLINK payloads as the kernel sends them: decoding must never
//! panic, whatever the attribute lengths, nesting or netkit values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = nk_netlink::LinkInfo::decode(data) {
        let _ = format!("{l:?}");
    }
    let _ = nk_netlink::link::decode_netkit(data);
});
