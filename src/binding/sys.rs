//! The binding's one call that Node-API cannot make safe: handing memory to V8 as an external
//! ArrayBuffer with a finalizer of our own. (The crate's other `unsafe` is in `crate::sys` and
//! the loop's poller.)

use napi::bindgen_prelude::Uint32ArraySlice;
use napi::{Env, Result};

/// A `Uint32Array` over `words` without a copy. Once V8 has collected the array and every view
/// of its buffer, `collected` gets `words` back, on the JavaScript thread (Node-API runs the
/// finalizers of external buffers there, with a usable `Env`). Empty `words` cannot be
/// external (Node-API refuses a null pointer): they are copied.
pub fn external_u32_array<'env>(
    env: &'env Env,
    mut words: Vec<u32>,
    collected: impl FnOnce(Env, Vec<u32>) + 'env,
) -> Result<Uint32ArraySlice<'env>> {
    if words.is_empty() {
        return Uint32ArraySlice::from_data(env, words);
    }
    let data = words.as_mut_ptr();
    let len = words.len();
    // SAFETY: `data` points at `len` initialized words of `words`' heap allocation, which does
    // not move when `words` (the hint) moves, and is neither read nor freed by us until V8 hands
    // the hint back to `collected`, after the last view of the buffer is gone.
    unsafe { Uint32ArraySlice::from_external(env, data, len, words, collected) }
}
