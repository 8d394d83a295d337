//! KTAP from the guest (or a crashed test): parsing never panics and the
//! counts stay consistent with the results.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let doc = ktap::parse(&text);
    let (p, f, s) = doc.leaf_counts();
    let _ = (p, f, s);
    for r in &doc.results {
        let _ = ktap::parse_result_line(&r.name);
    }
});
