//! The PROXY protocol parser fed arbitrary first bytes of a connection, whole and in every
//! prefix a trickling peer could have sent (`usockets_rs::proxy::assert_invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usockets_rs::proxy::assert_invariants;

fuzz_target!(|data: &[u8]| {
    // The loop parses again after each read: every prefix is an input it can see.
    let step = (data.len() / 64).max(1);
    for cut in (0..data.len()).step_by(step) {
        assert_invariants(&data[..cut]);
    }
    assert_invariants(data);
});
