//! The binding's calls that Node-API cannot make safe: handing memory to V8 as an external
//! ArrayBuffer with a finalizer of our own, and libuv watching a descriptor on the JavaScript
//! thread ([`PollerWatch`]). (The crate's other `unsafe` is in `crate::sys` and the loop's
//! poller.)

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use napi::bindgen_prelude::{ArrayBuffer, Uint32ArraySlice};
use napi::{check_status, sys as napi_sys, Env, Result};

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

// libuv, as Node.js exports it to addons (its ABI is stable within a major version of libuv 1).
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;
const UV_READABLE: c_int = 1;

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_handle_set_data(handle: *mut c_void, data: *mut c_void);
    fn uv_handle_get_data(handle: *const c_void) -> *mut c_void;
    fn uv_unref(handle: *mut c_void);
    fn uv_close(handle: *mut c_void, closed: unsafe extern "C" fn(*mut c_void));
    fn uv_poll_init(event_loop: *mut napi_sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(
        handle: *mut c_void,
        events: c_int,
        ready: unsafe extern "C" fn(*mut c_void, c_int, c_int),
    ) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_timer_init(event_loop: *mut napi_sys::uv_loop_s, handle: *mut c_void) -> c_int;
    fn uv_timer_start(
        handle: *mut c_void,
        due: unsafe extern "C" fn(*mut c_void),
        timeout: u64,
        repeat: u64,
    ) -> c_int;
    fn uv_timer_stop(handle: *mut c_void) -> c_int;
}

/// What a [`PollerWatch`] calls on the JavaScript thread: with the environment (inside a
/// handle scope and a callback scope, so promise jobs and `nextTick`s run after it, as after
/// any I/O callback of Node's) and the watch, to stop it or arm its timer.
pub type OnWake = Box<dyn FnMut(&Env, &WatchControl)>;

/// libuv watching a descriptor for readability on the JavaScript thread, with a timer beside
/// it; both unreferenced (they never keep the process alive). Dropping it closes both.
pub struct PollerWatch {
    state: *mut WatchState,
}

/// Stops a [`PollerWatch`] or arms its timer, from its callback.
pub struct WatchControl {
    poll: Box<[u64]>,
    timer: Box<[u64]>,
    /// Set once closing began: the handles take no more calls.
    closing: Cell<bool>,
    /// libuv reported an error on the descriptor, and stopped watching it.
    failed: Cell<bool>,
}

struct WatchState {
    env: napi_sys::napi_env,
    control: WatchControl,
    on_wake: OnWake,
    async_context: napi_sys::napi_async_context,
    resource: napi_sys::napi_ref,
    /// Removes the environment's teardown hook (which closes the handles if we have not).
    cleanup: napi_sys::napi_async_cleanup_hook_handle,
    /// Handles whose close callback has not run yet.
    open_handles: u8,
    /// A [`PollerWatch`] points here. The environment's end can close the handles before the
    /// watch is dropped (finalizers run last): the memory is freed once both are gone.
    watched: bool,
}

fn handle_storage(kind: c_int) -> Box<[u64]> {
    // SAFETY: a pure query of libuv's handle sizes.
    let bytes = unsafe { uv_handle_size(kind) };
    vec![0u64; bytes.div_ceil(8)].into_boxed_slice()
}

fn uv_result(code: c_int) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!("libuv error {code}")))
    }
}

impl PollerWatch {
    /// Watches `fd` (which must outlive the watch) on `env`'s libuv loop; nothing is started.
    pub fn new(env: &Env, fd: RawFd, on_wake: OnWake) -> Result<PollerWatch> {
        let raw_env = env.raw();
        let mut event_loop = std::ptr::null_mut();
        // SAFETY: `raw_env` is the live environment of this call.
        check_status!(unsafe { napi_sys::napi_get_uv_event_loop(raw_env, &mut event_loop) })?;
        let control = WatchControl {
            poll: handle_storage(UV_POLL),
            timer: handle_storage(UV_TIMER),
            closing: Cell::new(false),
            failed: Cell::new(false),
        };
        let (mut resource_object, mut name, mut async_context, mut resource) =
            (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: plain Node-API calls on the live environment, writing to the locals above.
        unsafe {
            check_status!(napi_sys::napi_create_object(raw_env, &mut resource_object))?;
            check_status!(napi_sys::napi_create_string_utf8(
                raw_env,
                c"usockets-rs:Loop".as_ptr(),
                16,
                &mut name
            ))?;
            check_status!(napi_sys::napi_async_init(raw_env, resource_object, name, &mut async_context))?;
            check_status!(napi_sys::napi_create_reference(raw_env, resource_object, 1, &mut resource))?;
        }
        let state = Box::into_raw(Box::new(WatchState {
            env: raw_env,
            control,
            on_wake,
            async_context,
            resource,
            cleanup: std::ptr::null_mut(),
            open_handles: 0,
            watched: false,
        }));
        // SAFETY: `state` is a fresh allocation that only the handles' callbacks and this
        // watch use, all on this thread; it is freed once its handles have closed
        // (`handle_closed`), which is after their last callback. The handles' storage has
        // libuv's size and is 8-byte aligned, and lives in `state` until then.
        unsafe {
            let poll = (*state).control.poll();
            let timer = (*state).control.timer();
            // A timer's initialization cannot fail.
            uv_timer_init(event_loop, timer);
            (*state).open_handles = 1;
            uv_handle_set_data(timer, state.cast());
            uv_unref(timer);
            if let Err(err) = uv_result(uv_poll_init(event_loop, poll, fd)) {
                (*state).control.closing.set(true);
                uv_close(timer, handle_closed);
                return Err(err);
            }
            (*state).open_handles = 2;
            uv_handle_set_data(poll, state.cast());
            uv_unref(poll);
            let mut cleanup = std::ptr::null_mut();
            check_status!(napi_sys::napi_add_async_cleanup_hook(
                raw_env,
                Some(environment_ends),
                state.cast(),
                &mut cleanup
            ))
            .inspect_err(|_| (*state).control.close())?;
            (*state).cleanup = cleanup;
            (*state).watched = true;
            Ok(PollerWatch { state })
        }
    }

    /// Calls the callback at once (on libuv's next turn), then whenever the descriptor is
    /// readable or the timer is due (until stopped).
    pub fn start(&self) -> Result<()> {
        // SAFETY: see `new`: the state lives until both handles have closed.
        unsafe { (*self.state).control.start() }
    }
}

impl WatchControl {
    fn poll(&self) -> *mut c_void {
        self.poll.as_ptr().cast_mut().cast()
    }

    fn timer(&self) -> *mut c_void {
        self.timer.as_ptr().cast_mut().cast()
    }

    fn start(&self) -> Result<()> {
        if self.closing.get() {
            return Err(napi::Error::from_reason("the environment is ending"));
        }
        self.failed.set(false);
        // The first call works out when the next one is due (`wake_after`).
        self.wake_after(Some(Duration::ZERO));
        // SAFETY: the poll handle is initialized and not closing.
        uv_result(unsafe { uv_poll_start(self.poll(), UV_READABLE, poll_ready) })
    }

    /// Whether libuv stopped watching the descriptor after an error on it: the callback must
    /// give up the watch.
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// Stops watching and disarms the timer.
    pub fn stop(&self) {
        if !self.closing.get() {
            // SAFETY: both handles are initialized and not closing.
            unsafe {
                uv_poll_stop(self.poll());
                uv_timer_stop(self.timer());
            }
        }
    }

    /// Also calls back after `after` (rounded up to libuv's milliseconds), or not at all.
    pub fn wake_after(&self, after: Option<Duration>) {
        if self.closing.get() {
            return;
        }
        // SAFETY: the timer handle is initialized and not closing.
        unsafe {
            match after {
                Some(after) => {
                    let milliseconds = after.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64;
                    uv_timer_start(self.timer(), timer_due, milliseconds, 0);
                }
                None => {
                    uv_timer_stop(self.timer());
                }
            }
        }
    }

    /// Closes both handles (once); their state is freed when the last has closed.
    fn close(&self) {
        if !self.closing.replace(true) {
            // SAFETY: both handles are initialized, and closed only here, once.
            unsafe {
                uv_close(self.poll(), handle_closed);
                uv_close(self.timer(), handle_closed);
            }
        }
    }
}

impl Drop for PollerWatch {
    fn drop(&mut self) {
        // SAFETY: see `new`; this is on the JavaScript thread, the state's only thread. The
        // state is freed here if its handles have closed already, else by the last of them.
        unsafe {
            (*self.state).control.close();
            (*self.state).watched = false;
            if (*self.state).open_handles == 0 {
                drop(Box::from_raw(self.state));
            }
        }
    }
}

/// Runs the callback of the watch whose state `handle` carries.
///
/// # Safety
/// `handle` is one of a live [`WatchState`]'s handles, and this is its callback.
unsafe fn wake(handle: *mut c_void) {
    // The callback may drop the watch (JavaScript closing its loop), which closes the handles
    // through `control`: only the fields are borrowed here, never the whole state.
    // SAFETY: per the contract, the data is the state, alive until both handles closed.
    let state = unsafe { uv_handle_get_data(handle) }.cast::<WatchState>();
    // SAFETY: as above.
    let (env, control, on_wake) = unsafe { ((*state).env, &(*state).control, &mut (*state).on_wake) };
    if control.closing.get() {
        return;
    }
    let (mut handles, mut resource, mut scope) =
        (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: libuv calls back on the environment's own thread, outside any JavaScript: a
    // handle scope and a callback scope are what Node's own I/O callbacks open there.
    unsafe {
        if napi_sys::napi_open_handle_scope(env, &mut handles) != napi_sys::Status::napi_ok {
            return;
        }
        napi_sys::napi_get_reference_value(env, (*state).resource, &mut resource);
        let scoped = napi_sys::napi_open_callback_scope(env, resource, (*state).async_context, &mut scope);
        on_wake(&Env::from_raw(env), control);
        if scoped == napi_sys::Status::napi_ok {
            // Runs the `nextTick`s and promise jobs the callback queued.
            napi_sys::napi_close_callback_scope(env, scope);
        }
        napi_sys::napi_close_handle_scope(env, handles);
    }
}

unsafe extern "C" fn poll_ready(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: libuv calls this for the poll handle of a live watch (`WatchControl::start`).
    unsafe {
        if status < 0 {
            // libuv has stopped the handle; the callback hands the driving back.
            let state = uv_handle_get_data(handle).cast::<WatchState>();
            (*state).control.failed.set(true);
        }
        wake(handle)
    }
}

unsafe extern "C" fn timer_due(handle: *mut c_void) {
    // SAFETY: libuv calls this for the timer handle of a live watch (`wake_after`).
    unsafe { wake(handle) }
}

unsafe extern "C" fn handle_closed(handle: *mut c_void) {
    // SAFETY: libuv calls this once per closed handle of a live watch. After the last, the
    // environment's resources go back (it may be ending and waiting for the hook's removal),
    // and the memory too unless a `PollerWatch` still points to it.
    unsafe {
        let state = uv_handle_get_data(handle).cast::<WatchState>();
        (*state).open_handles -= 1;
        if (*state).open_handles > 0 {
            return;
        }
        napi_sys::napi_delete_reference((*state).env, (*state).resource);
        napi_sys::napi_async_destroy((*state).env, (*state).async_context);
        // Last: an ending environment waits for this removal before it goes.
        if !(*state).cleanup.is_null() {
            napi_sys::napi_remove_async_cleanup_hook((*state).cleanup);
        }
        if !(*state).watched {
            drop(Box::from_raw(state));
        }
    }
}

unsafe extern "C" fn environment_ends(_hook: napi_sys::napi_async_cleanup_hook_handle, state: *mut c_void) {
    // SAFETY: registered in `new` with the state, which lives until `handle_closed` removes
    // this hook; the environment then waits for that removal.
    unsafe { (*state.cast::<WatchState>()).control.close() }
}
