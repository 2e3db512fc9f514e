fn main() {
    // Only the Node-API build needs the linker setup; `cargo test --no-default-features` links no napi symbols.
    if std::env::var_os("CARGO_FEATURE_NAPI").is_some() {
        napi_build::setup();
    }
}
