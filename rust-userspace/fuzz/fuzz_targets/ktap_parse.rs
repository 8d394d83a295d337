//! KTAP from the guest (or a crashed test): parsing never panics, nesting
//! stays bounded, the counts add up, and writing the document back gives
//! the same results (`ktap::check_invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = ktap::check_invariants(&text) {
        panic!("{e}\ninput: {text:?}");
    }
});
