//! The Node-API binding: the `LoopCore` class that `index.js` builds the public API on.
//!
//! It only converts arguments and errors and connects the loop's doorbell to a threadsafe
//! function; argument validation with `TypeError` / `RangeError` happens in `index.js`, where it
//! is cheap. Everything here runs on the JavaScript thread that created the loop, except the
//! doorbell, which runs on the loop thread.

use std::cell::RefCell;
use std::time::Duration;

use napi::bindgen_prelude::{Function, Uint32ArraySlice};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{CleanupEnvHook, Env, Status};
use napi_derive::napi;

use crate::error::Error;
use crate::event_loop::{Batch, EventLoop, LoopConfig, SlotId};

/// The string `code` a JavaScript error carries (`'EPERM'`, `'ERR_LOOP_CLOSED'`, ...).
pub struct ErrorCode(&'static str);

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for ErrorCode {
    fn from(status: Status) -> Self {
        ErrorCode(match status {
            Status::InvalidArg => "ERR_INVALID_ARG_TYPE",
            _ => "ERR_NAPI",
        })
    }
}

type Result<T> = std::result::Result<T, napi::Error<ErrorCode>>;

fn js_error(err: Error) -> napi::Error<ErrorCode> {
    napi::Error::new(ErrorCode(err.code()), err.to_string())
}

fn slot(id: f64) -> SlotId {
    SlotId::unpack(id as u64)
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1000.0)
}

/// One loop thread and its delivery channel. Internal: `index.js` wraps it as `Loop`.
#[napi]
pub struct LoopCore {
    event_loop: EventLoop,
    /// The batch JavaScript is dispatching; taking the next one acknowledges it.
    batch: RefCell<Batch>,
    cleanup: Option<CleanupEnvHook<EventLoop>>,
}

#[napi]
impl LoopCore {
    /// Starts the loop thread. `deliver` is called (with no arguments) whenever events wait in
    /// `takeBatch`; it must take them all.
    #[napi(constructor)]
    pub fn new(env: Env, deliver: Function<(), ()>, max_pending_bytes: f64) -> Result<Self> {
        let doorbell = deliver
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|_| Ok(()))
            .map_err(|err| napi::Error::new(ErrorCode::from(err.status), err.reason))?;
        let config = LoopConfig {
            max_pending_bytes: max_pending_bytes as usize,
        };
        let event_loop = EventLoop::start(
            config,
            Box::new(move || {
                // `Closing` means the environment is going away; its cleanup hook stops the loop.
                doorbell.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }),
        )
        .map_err(js_error)?;
        // Loop threads must not outlive their environment (a worker that is terminated, or the
        // main thread at exit): the hook stops and joins the thread.
        let cleanup = env
            .add_env_cleanup_hook(event_loop.clone(), |event_loop| event_loop.stop())
            .map_err(|err| napi::Error::new(ErrorCode::from(err.status), err.reason))?;
        Ok(LoopCore {
            event_loop,
            batch: RefCell::default(),
            cleanup: Some(cleanup),
        })
    }

    /// All pending event records (`[kind, index, stamp, arg]` each), or null when there are none.
    /// Taking acknowledges the records taken before: their callbacks have run.
    #[napi]
    pub fn take_batch<'env>(&self, env: &'env Env) -> Result<Option<Uint32ArraySlice<'env>>> {
        let mut batch = self.batch.borrow_mut();
        if !self.event_loop.take_batch(&mut batch) {
            return Ok(None);
        }
        Uint32ArraySlice::copy_from(env, batch.words())
            .map(Some)
            .map_err(|err| napi::Error::new(ErrorCode::from(err.status), err.reason))
    }

    /// A new handle id (a number below 2^53).
    #[napi]
    pub fn create_handle(&self) -> Result<f64> {
        self.event_loop
            .create_handle()
            .map(|id| id.pack() as f64)
            .map_err(js_error)
    }

    #[napi]
    pub fn release_handle(&self, id: f64) {
        self.event_loop.release(slot(id));
    }

    /// Arms a timer `delay_ms` from now, repeating every `period_ms` (0: once).
    #[napi]
    pub fn arm_timer(&self, id: f64, stamp: u32, delay_ms: f64, period_ms: f64) -> Result<()> {
        let period = (period_ms > 0.0).then(|| millis(period_ms));
        self.event_loop
            .arm_timer(slot(id), stamp, millis(delay_ms), period)
            .map_err(js_error)
    }

    #[napi]
    pub fn disarm_timer(&self, id: f64) -> Result<()> {
        self.event_loop.disarm_timer(slot(id)).map_err(js_error)
    }

    #[napi]
    pub fn start_poll(&self, id: f64, stamp: u32, fd: i32, interest: u32) -> Result<()> {
        self.event_loop
            .start_poll(slot(id), stamp, fd, interest)
            .map_err(js_error)
    }

    #[napi]
    pub fn change_poll(&self, id: f64, fd: i32, interest: u32) -> Result<()> {
        self.event_loop
            .change_poll(slot(id), fd, interest)
            .map_err(js_error)
    }

    #[napi]
    pub fn stop_poll(&self, id: f64, fd: i32) -> Result<()> {
        self.event_loop.stop_poll(slot(id), fd).map_err(js_error)
    }

    /// Fails with `EPERM` for regular files and directories, `EBADF` for closed descriptors.
    #[napi]
    pub fn check_pollable(&self, fd: i32) -> Result<()> {
        crate::sys::check_pollable(fd).map_err(|err| js_error(err.into()))
    }

    #[napi]
    pub fn wakeup(&self) -> Result<()> {
        self.event_loop.wakeup().map_err(js_error)
    }

    #[napi(getter)]
    pub fn iteration_number(&self) -> f64 {
        self.event_loop.iteration_number() as f64
    }

    /// Stops and joins the loop thread. Idempotent.
    #[napi]
    pub fn close(&mut self, env: Env) {
        self.event_loop.stop();
        if let Some(hook) = self.cleanup.take() {
            // Only fails while the environment is being torn down, when the hook runs anyway.
            let _ = env.remove_env_cleanup_hook(hook);
        }
    }
}
