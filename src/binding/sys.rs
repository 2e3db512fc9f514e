//! The binding's one call that Node-API cannot make safe: handing memory to V8 as an external
//! ArrayBuffer with a finalizer of our own. (The crate's other `unsafe` is in `crate::sys` and
//! the loop's poller.)

use std::cell::Cell;
use std::rc::Rc;

use napi::bindgen_prelude::{ArrayBuffer, Uint32ArraySlice};
use napi::{Env, Result};

/// Memory lent to V8 by [`external_u32_array`], which JavaScript may hand back before V8
/// collects its buffer ([`Lent::take_back`]). Whichever comes first gets the words; the other
/// finds none.
pub struct Lent {
    /// Where the words are: recognizes their ArrayBuffer.
    address: usize,
    words: Rc<Cell<Option<Vec<u32>>>>,
}

impl Lent {
    /// The words back from `buffer` if it is the one they were lent as: `buffer` is detached,
    /// so every view of it becomes empty, unless it is detached already (a transfer to another
    /// isolate detaches it here while the memory lives on there: then the words stay lent).
    pub fn take_back(&self, buffer: ArrayBuffer) -> Result<Option<Vec<u32>>> {
        if buffer.as_ptr() as usize != self.address || buffer.is_detached()? {
            return Ok(None);
        }
        buffer.detach()?;
        Ok(self.words.take())
    }
}

/// A `Uint32Array` over `words` without a copy. Once V8 has collected the array and every view
/// of its buffer, `collected` gets `words` back, on the JavaScript thread (Node-API runs the
/// finalizers of external buffers there, with a usable `Env`), unless [`Lent::take_back`] took
/// them first. Empty `words` cannot be external (Node-API refuses a null pointer): they are
/// copied, and nothing is lent.
pub fn external_u32_array<'env>(
    env: &'env Env,
    mut words: Vec<u32>,
    collected: impl FnOnce(Env, Vec<u32>) + 'env,
) -> Result<(Uint32ArraySlice<'env>, Option<Lent>)> {
    if words.is_empty() {
        return Ok((Uint32ArraySlice::from_data(env, words)?, None));
    }
    let data = words.as_mut_ptr();
    let len = words.len();
    let lent = Lent { address: data as usize, words: Rc::new(Cell::new(Some(words))) };
    let slot = lent.words.clone();
    let finalize = move |env, slot: Rc<Cell<Option<Vec<u32>>>>| {
        if let Some(words) = slot.take() {
            collected(env, words);
        }
    };
    // SAFETY: `data` points at `len` initialized words of the heap allocation `slot` holds,
    // which does not move when the Vec moves. We neither read, write nor free it until V8
    // hands `slot` back to `finalize`, after the last view of the buffer is gone, or until
    // `Lent::take_back` detached the buffer: V8 never touches a detached buffer's memory (its
    // views read as empty), and its finalizer then finds the slot empty. Native code that
    // took a pointer into a view before the detach (an unfinished `net.Socket` write, an
    // `fs.write`) would still read it; not giving a lent Buffer to such code is the
    // `borrowData` contract (index.d.ts), which only borrowing handlers opt into.
    let array = unsafe { Uint32ArraySlice::from_external(env, data, len, slot, finalize) }?;
    Ok((array, Some(lent)))
}
