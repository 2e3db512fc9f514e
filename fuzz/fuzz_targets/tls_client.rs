//! A TLS client session (verifying `localhost` against the test CA) fed arbitrary bytes as the
//! server's, in arbitrary chunks (the first four bytes choose the chunking).
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use usockets_rs::tls::{replay, TlsContext, TlsOptions};

static CLIENT: LazyLock<Arc<TlsContext>> = LazyLock::new(|| {
    let options = TlsOptions {
        ca: Some(include_bytes!("../../test/fixtures/tls/ca.pem").to_vec()),
        ..TlsOptions::default()
    };
    Arc::new(TlsContext::new(&options).expect("the fixture configuration loads"))
});

fuzz_target!(|data: &[u8]| {
    let Some((seed, input)) = data.split_first_chunk::<4>() else { return };
    let name = "localhost".try_into().expect("a valid name");
    let outcome = replay::replay_as_client(&CLIENT, name, input, u32::from_le_bytes(*seed));
    // Nobody can finish a handshake with a client whose key share they never saw.
    assert!(!outcome.opened, "{outcome:?}");
});
