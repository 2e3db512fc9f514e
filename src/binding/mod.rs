//! The Node-API binding: the `LoopCore` class that `index.js` builds the public API on.
//!
//! It only converts arguments and errors and connects the loop's doorbell to a threadsafe
//! function; argument validation with `TypeError` / `RangeError` happens in `index.js`, where it
//! is cheap. Everything here runs on the JavaScript thread that created the loop, except the
//! doorbell, which runs on the loop thread.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use napi::bindgen_prelude::{Function, Uint32ArraySlice};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Env, Status};
use napi_derive::napi;

use crate::error::Error;
use crate::event_loop::{ConnectTarget, EventLoop, JsSide, LoopConfig, SlotId, SocketTimeout};

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

fn invalid_argument(message: String) -> napi::Error<ErrorCode> {
    napi::Error::new(ErrorCode("ERR_INVALID_ARG_VALUE"), message)
}

fn slot(id: f64) -> SlotId {
    SlotId::unpack(id as u64)
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1000.0)
}

thread_local! {
    /// The open loops of this thread's JavaScript environment (one environment per thread: the
    /// main thread or a worker). One cleanup hook per environment stops them all when it ends,
    /// so no loop thread outlives its environment. (A hook per loop would leak its data on every
    /// `close()`: napi-rs cannot free the data of a removed hook.)
    static ENVIRONMENT_LOOPS: RefCell<Option<Rc<RefCell<Vec<EventLoop>>>>> = const { RefCell::new(None) };
}

fn register_with_environment(env: &Env, event_loop: &EventLoop) -> napi::Result<()> {
    ENVIRONMENT_LOOPS.with(|cell| {
        let mut registry = cell.borrow_mut();
        let loops = match registry.as_ref() {
            Some(loops) => Rc::clone(loops),
            None => {
                let loops = Rc::new(RefCell::new(Vec::new()));
                env.add_env_cleanup_hook(Rc::clone(&loops), |loops: Rc<RefCell<Vec<EventLoop>>>| {
                    for event_loop in loops.borrow_mut().drain(..) {
                        event_loop.stop();
                    }
                })?;
                registry.insert(loops).clone()
            }
        };
        loops.borrow_mut().push(event_loop.clone());
        Ok(())
    })
}

fn unregister_from_environment(event_loop: &EventLoop) {
    ENVIRONMENT_LOOPS.with(|cell| {
        if let Some(loops) = cell.borrow().as_ref() {
            loops.borrow_mut().retain(|other| !other.is_same_loop(event_loop));
        }
    });
}

/// Where `listen` binds: null or `''` is every interface, dual-stack; an address is used as it
/// is; a name is resolved here, synchronously (API.md: pass an address to avoid that).
fn listen_address(host: Option<String>, port: u16) -> Result<SocketAddr> {
    let host = host.unwrap_or_default();
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| napi::Error::new(ErrorCode("ENOTFOUND"), format!("getaddrinfo ENOTFOUND {host}")))
}

/// A connect target: an address literal is used as it is (IPv6 with or without brackets), a
/// name is resolved off the loop thread.
fn connect_target(host: String, port: u16) -> ConnectTarget {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&host);
    match literal.parse::<IpAddr>() {
        Ok(ip) => ConnectTarget::Addresses(vec![SocketAddr::new(ip, port)]),
        Err(_) => ConnectTarget::Host(host, port),
    }
}

/// One loop thread and its delivery channel. Internal: `index.js` wraps it as `Loop`.
#[napi]
pub struct LoopCore {
    /// `None` once closed: dropping it frees the poller and every fd the loop held at once,
    /// rather than whenever the garbage collector finalizes this object.
    event_loop: Option<EventLoop>,
    /// The batch JavaScript is dispatching (taking the next one acknowledges it) and the sockets
    /// it writes to directly.
    js: RefCell<JsSide>,
}

impl LoopCore {
    fn running(&self) -> Result<&EventLoop> {
        self.event_loop.as_ref().ok_or_else(|| js_error(Error::LoopClosed))
    }

    /// Runs `operation` on the open loop; on a closed one it is a no-op returning the default.
    fn if_running<T: Default>(&self, operation: impl FnOnce(&EventLoop) -> T) -> T {
        self.event_loop.as_ref().map(operation).unwrap_or_default()
    }
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
        let config = LoopConfig { max_pending_bytes: max_pending_bytes as usize };
        let event_loop = EventLoop::start(
            config,
            Box::new(move || {
                // `Closing` means the environment is going away; its cleanup hook stops the loop.
                doorbell.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }),
        )
        .map_err(js_error)?;
        if let Err(err) = register_with_environment(&env, &event_loop) {
            event_loop.stop();
            return Err(napi::Error::new(ErrorCode::from(err.status), err.reason));
        }
        Ok(LoopCore { event_loop: Some(event_loop), js: RefCell::default() })
    }

    /// All pending event records (`[kind, index, stamp, arg]` each), or null when there are none.
    /// Taking acknowledges the records taken before: their callbacks have run.
    #[napi]
    pub fn take_batch<'env>(&self, env: &'env Env) -> Result<Option<Uint32ArraySlice<'env>>> {
        let Some(event_loop) = &self.event_loop else { return Ok(None) };
        let mut js = self.js.borrow_mut();
        if !event_loop.take_batch(&mut js) {
            return Ok(None);
        }
        let records = Uint32ArraySlice::copy_from(env, js.records())
            .map_err(|err| napi::Error::new(ErrorCode::from(err.status), err.reason))?;
        js.release_records();
        Ok(Some(records))
    }

    /// A new handle id (a number below 2^53).
    #[napi]
    pub fn create_handle(&self) -> Result<f64> {
        self.running()?.create_handle().map(|id| id.pack() as f64).map_err(js_error)
    }

    #[napi]
    pub fn release_handle(&self, id: f64) {
        self.if_running(|event_loop| event_loop.release(slot(id)));
    }

    /// Arms a timer `delay_ms` from now, repeating every `period_ms` (0: once).
    #[napi]
    pub fn arm_timer(&self, id: f64, stamp: u32, delay_ms: f64, period_ms: f64) -> Result<()> {
        let period = (period_ms > 0.0).then(|| millis(period_ms));
        self.running()?.arm_timer(slot(id), stamp, millis(delay_ms), period).map_err(js_error)
    }

    #[napi]
    pub fn disarm_timer(&self, id: f64) -> Result<()> {
        self.running()?.disarm_timer(slot(id)).map_err(js_error)
    }

    #[napi]
    pub fn start_poll(&self, id: f64, stamp: u32, fd: i32, interest: u32) -> Result<()> {
        self.running()?.start_poll(slot(id), stamp, fd, interest).map_err(js_error)
    }

    #[napi]
    pub fn change_poll(&self, id: f64, fd: i32, interest: u32) -> Result<()> {
        self.running()?.change_poll(slot(id), fd, interest).map_err(js_error)
    }

    #[napi]
    pub fn stop_poll(&self, id: f64, fd: i32) -> Result<()> {
        self.running()?.stop_poll(slot(id), fd).map_err(js_error)
    }

    /// Fails with `EPERM` for regular files and directories, `EBADF` for closed descriptors.
    #[napi]
    pub fn check_pollable(&self, fd: i32) -> Result<()> {
        crate::sys::check_pollable(fd).map_err(|err| js_error(err.into()))
    }

    #[napi]
    pub fn wakeup(&self) -> Result<()> {
        self.running()?.wakeup().map_err(js_error)
    }

    #[napi(getter)]
    pub fn iteration_number(&self) -> f64 {
        self.if_running(|event_loop| event_loop.iteration_number() as f64)
    }

    /// Listens on TCP; returns the listener's id. Errors carry the errno code (`EADDRINUSE`).
    #[napi]
    pub fn listen(&self, host: Option<String>, port: u32, exclusive: bool) -> Result<f64> {
        let addr = listen_address(host, port as u16)?;
        let id = self.running()?.listen(&mut self.js.borrow_mut(), addr, exclusive).map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    #[napi]
    pub fn listen_unix(&self, path: String) -> Result<f64> {
        let id = self.running()?.listen_unix(&mut self.js.borrow_mut(), path.as_ref()).map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    /// The port a listener is bound to (-1 for Unix sockets, or once closed).
    #[napi]
    pub fn listener_port(&self, id: f64) -> i32 {
        self.event_loop
            .as_ref()
            .and_then(|event_loop| event_loop.listener_address(&self.js.borrow(), slot(id)))
            .map_or(-1, |(_, port)| port)
    }

    #[napi]
    pub fn close_listener(&self, id: f64) {
        self.if_running(|event_loop| event_loop.close_listener(&mut self.js.borrow_mut(), slot(id)));
    }

    /// Starts a connect; returns the socket's id at once. `source` must be an IP address.
    #[napi]
    pub fn connect(&self, host: String, port: u32, source: Option<String>) -> Result<f64> {
        let source =
            match source.filter(|s| !s.is_empty()) {
                Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                    invalid_argument(format!("sourceHost must be an IP address, got '{text}'"))
                })?),
                None => None,
            };
        let event_loop = self.running()?;
        let id = event_loop.create_handle().map_err(js_error)?;
        event_loop
            .connect(&mut self.js.borrow_mut(), id, connect_target(host, port as u16), source)
            .map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    #[napi]
    pub fn connect_unix(&self, path: String) -> Result<f64> {
        let event_loop = self.running()?;
        let id = event_loop.create_handle().map_err(js_error)?;
        event_loop
            .connect(&mut self.js.borrow_mut(), id, ConnectTarget::Unix(PathBuf::from(path)), None)
            .map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    #[napi]
    pub fn write(&self, id: f64, data: &[u8], more: bool) -> u32 {
        self.if_running(|event_loop| event_loop.write(&self.js.borrow(), slot(id), data, more) as u32)
    }

    #[napi]
    pub fn write2(&self, id: f64, header: &[u8], payload: &[u8]) -> u32 {
        self.if_running(|event_loop| event_loop.write2(&self.js.borrow(), slot(id), header, payload) as u32)
    }

    /// Takes all of `data`; returns the bytes buffered natively afterwards.
    #[napi]
    pub fn send(&self, id: f64, data: &[u8]) -> f64 {
        self.if_running(|event_loop| event_loop.send(&self.js.borrow(), slot(id), data) as f64)
    }

    #[napi]
    pub fn buffered_amount(&self, id: f64) -> f64 {
        self.if_running(|event_loop| event_loop.buffered_amount(&self.js.borrow(), slot(id)) as f64)
    }

    #[napi]
    pub fn shutdown(&self, id: f64) {
        self.if_running(|event_loop| event_loop.shutdown(&self.js.borrow(), slot(id)));
    }

    #[napi]
    pub fn shutdown_read(&self, id: f64) {
        self.if_running(|event_loop| event_loop.shutdown_read(&self.js.borrow(), slot(id)));
    }

    #[napi]
    pub fn flush(&self, id: f64) {
        self.if_running(|event_loop| event_loop.flush(&self.js.borrow(), slot(id)));
    }

    #[napi]
    pub fn socket_fd(&self, id: f64) -> i32 {
        self.event_loop.as_ref().map_or(-1, |event_loop| event_loop.socket_fd(&self.js.borrow(), slot(id)))
    }

    /// JavaScript closed the socket (or cancelled its connect).
    #[napi]
    pub fn close_socket(&self, id: f64) {
        self.if_running(|event_loop| event_loop.close_socket(&mut self.js.borrow_mut(), slot(id)));
    }

    /// JavaScript dispatched the loop's close or connect error of the socket.
    #[napi]
    pub fn release_socket(&self, id: f64) {
        self.if_running(|event_loop| event_loop.release_socket(&mut self.js.borrow_mut(), slot(id)));
    }

    /// Arms the socket's timeout in `seconds` (`long`: its long timeout); 0 disarms.
    /// `connecting`: JavaScript has not seen the socket open, so it is a connect timeout. The
    /// expiry's record carries `stamp`.
    #[napi]
    pub fn set_socket_timeout(&self, id: f64, seconds: f64, long: bool, connecting: bool, stamp: u32) {
        let after = (seconds > 0.0).then(|| Duration::from_secs_f64(seconds));
        let timeout = SocketTimeout { long, after, connecting, stamp };
        self.if_running(|event_loop| event_loop.set_socket_timeout(slot(id), timeout));
    }

    #[napi]
    pub fn pause(&self, id: f64, paused: bool) {
        self.if_running(|event_loop| event_loop.pause(slot(id), paused));
    }

    /// Stops and joins the loop thread. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        if let Some(event_loop) = self.event_loop.take() {
            event_loop.stop();
            unregister_from_environment(&event_loop);
        }
        // The sockets' and listeners' fds close with the JavaScript side's share of them.
        *self.js.get_mut() = JsSide::default();
    }
}
