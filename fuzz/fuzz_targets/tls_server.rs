//! A TLS server session fed arbitrary bytes in arbitrary chunks (the first four bytes choose the
//! chunking), half the time with a context that asks JavaScript for unknown server names.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use usockets_rs::tls::{replay, TlsContext, TlsOptions};

fn server_context(asks_for_names: bool) -> Arc<TlsContext> {
    let options = TlsOptions {
        key: Some(include_bytes!("../../test/fixtures/tls/server.key").to_vec()),
        cert: Some(include_bytes!("../../test/fixtures/tls/server.pem").to_vec()),
        ..TlsOptions::default()
    };
    let context = TlsContext::new(&options).expect("the fixture configuration loads");
    context.set_asks_for_names(asks_for_names);
    Arc::new(context)
}

static PLAIN: LazyLock<Arc<TlsContext>> = LazyLock::new(|| server_context(false));
static ASKING: LazyLock<Arc<TlsContext>> = LazyLock::new(|| server_context(true));

fuzz_target!(|data: &[u8]| {
    let Some((seed, input)) = data.split_first_chunk::<4>() else { return };
    let seed = u32::from_le_bytes(*seed);
    let context = if seed & 1 == 0 { &*PLAIN } else { &*ASKING };
    let outcome = replay::replay_as_server(context, input, seed);
    // Nobody can finish a handshake with a server whose key share they never saw.
    assert!(!outcome.opened, "{outcome:?}");
});
