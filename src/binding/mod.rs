//! The Node-API binding: the `LoopCore` class that `index.js` builds the public API on.
//!
//! It only converts arguments and errors and connects the loop's doorbell to a threadsafe
//! function; argument validation with `TypeError` / `RangeError` happens in `index.js`, where it
//! is cheap. Everything here runs on the JavaScript thread that created the loop, except the
//! doorbell, which runs on the loop thread.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{ArrayBuffer, Buffer, Function, FunctionRef, Uint32ArraySlice};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Env, Status};
use napi_derive::napi;

use crate::error::Error;
use crate::event_loop::{BatchPool, Drive, EventLoop, JsSide, LoopConfig, SlotId};
use crate::net::{ClientTls, ConnectTarget, KeyingMaterialRequest, ListenOptions, SocketTimeout};
use crate::proxy::{Addresses, Command, Expect, Header};
use crate::tls::{ConfigError, TlsContext, TlsFailure, TlsOptions, TlsVersion};
use sys::{Lent, PollerWatch, WatchControl};

#[allow(unsafe_code)]
mod sys;
mod udp;
mod wire;

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

fn napi_error(err: napi::Error) -> napi::Error<ErrorCode> {
    napi::Error::new(ErrorCode::from(err.status), err.reason)
}

fn config_error(err: ConfigError) -> napi::Error<ErrorCode> {
    napi::Error::new(ErrorCode(err.code), err.message)
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

/// An address literal, IPv6 with or without brackets (`::1`, `[::1]`): the same in `listen`
/// and `connect`.
fn address_literal(host: &str) -> Option<IpAddr> {
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    unbracketed.parse().ok()
}

/// Where `listen` binds: null or `''` is every interface, dual-stack; an address is used as it
/// is; a name is resolved here, synchronously (index.d.ts, `listen`: pass an address to avoid that).
fn listen_address(host: Option<String>, port: u16) -> Result<SocketAddr> {
    let host = host.unwrap_or_default();
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port));
    }
    if let Some(ip) = address_literal(&host) {
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
    match address_literal(&host) {
        Some(ip) => ConnectTarget::Addresses(vec![SocketAddr::new(ip, port)]),
        None => ConnectTarget::Host(host, port),
    }
}

/// Listen options as `index.js` passes them (validated there).
#[napi(object)]
pub struct ListenOptionsInput {
    pub exclusive: bool,
    pub ipv6_only: bool,
    pub backlog: Option<u32>,
    pub max_connections: Option<u32>,
    /// `'required'` or `'optional'`; absent: no PROXY protocol.
    pub proxy_protocol: Option<String>,
}

impl ListenOptionsInput {
    fn into_options(self) -> ListenOptions {
        let proxy =
            self.proxy_protocol
                .map(|mode| if mode == "optional" { Expect::Optional } else { Expect::Required });
        ListenOptions {
            exclusive: self.exclusive,
            ipv6_only: self.ipv6_only,
            backlog: self.backlog,
            max_connections: self.max_connections.map(|max| max as usize),
            proxy,
        }
    }
}

#[napi(object)]
pub struct TcpOptionsOutput {
    pub keep_alive: bool,
    pub keep_alive_idle_seconds: f64,
    pub keep_alive_interval_seconds: f64,
    pub keep_alive_probes: u32,
    pub no_delay: bool,
}

#[napi(object)]
pub struct ListenerCountsOutput {
    pub rejected: f64,
    pub dropped: f64,
}

/// A PROXY header for `socket.proxy` (index.js turns `tlvs` into a Map).
#[napi(object)]
pub struct ProxyInfo {
    pub version: u32,
    /// `'PROXY'` or `'LOCAL'`.
    pub command: String,
    /// IP addresses (or Unix paths, with ports -1); absent when the header carries none.
    pub source_address: Option<String>,
    pub source_port: Option<i32>,
    pub destination_address: Option<String>,
    pub destination_port: Option<i32>,
    pub tlv_types: Vec<u32>,
    pub tlv_values: Vec<Buffer>,
}

impl From<Header> for ProxyInfo {
    fn from(header: Header) -> ProxyInfo {
        let ends = match header.addresses {
            Addresses::Unknown => None,
            Addresses::Ip { source, destination } => Some((
                (source.ip().to_string(), i32::from(source.port())),
                (destination.ip().to_string(), i32::from(destination.port())),
            )),
            Addresses::Unix { source, destination } => Some((
                (String::from_utf8_lossy(&source).into_owned(), -1),
                (String::from_utf8_lossy(&destination).into_owned(), -1),
            )),
        };
        let (source, destination) = ends.unzip();
        let (source_address, source_port) = source.unzip();
        let (destination_address, destination_port) = destination.unzip();
        let (tlv_types, tlv_values) =
            header.tlvs.into_iter().map(|(kind, value)| (u32::from(kind), Buffer::from(value))).unzip();
        ProxyInfo {
            version: u32::from(header.version),
            command: match header.command {
                Command::Proxy => "PROXY".into(),
                Command::Local => "LOCAL".into(),
            },
            source_address,
            source_port,
            destination_address,
            destination_port,
            tlv_types,
            tlv_values,
        }
    }
}

/// `TlsOptions` as `index.js` passes them: type-checked, PEM text as Buffers.
#[napi(object)]
pub struct TlsOptionsInput {
    pub key: Option<Buffer>,
    pub cert: Option<Buffer>,
    pub key_file_name: Option<String>,
    pub cert_file_name: Option<String>,
    pub passphrase: Option<String>,
    pub ca: Option<Buffer>,
    pub ca_file_name: Option<String>,
    pub reject_unauthorized: Option<bool>,
    pub request_cert: Option<bool>,
    pub servername: Option<String>,
    pub alpn_protocols: Option<Vec<String>>,
    /// `'TLSv1.3'` or anything else (checked in `index.js`) for TLS 1.2.
    pub min_version: Option<String>,
    /// `'TLSv1.2'` or anything else (checked in `index.js`) for TLS 1.3.
    pub max_version: Option<String>,
    /// Seconds (checked in `index.js`).
    pub handshake_timeout: Option<f64>,
    pub ticket_keys: Option<Buffer>,
}

impl From<TlsOptionsInput> for TlsOptions {
    fn from(input: TlsOptionsInput) -> Self {
        let defaults = TlsOptions::default();
        TlsOptions {
            key: input.key.map(|pem| pem.to_vec()),
            cert: input.cert.map(|pem| pem.to_vec()),
            key_file_name: input.key_file_name.map(PathBuf::from),
            cert_file_name: input.cert_file_name.map(PathBuf::from),
            passphrase: input.passphrase,
            ca: input.ca.map(|pem| pem.to_vec()),
            ca_file_name: input.ca_file_name.map(PathBuf::from),
            reject_unauthorized: input.reject_unauthorized.unwrap_or(defaults.reject_unauthorized),
            request_cert: input.request_cert.unwrap_or(defaults.request_cert),
            servername: input.servername.filter(|name| !name.is_empty()),
            alpn_protocols: input
                .alpn_protocols
                .unwrap_or_default()
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            min_version: match input.min_version.as_deref() {
                Some("TLSv1.3") => TlsVersion::Tls13,
                _ => TlsVersion::Tls12,
            },
            max_version: match input.max_version.as_deref() {
                Some("TLSv1.2") => TlsVersion::Tls12,
                _ => TlsVersion::Tls13,
            },
            handshake_timeout: input
                .handshake_timeout
                .map_or(defaults.handshake_timeout, Duration::from_secs_f64),
            ticket_keys: input.ticket_keys.map(|keys| keys.to_vec()),
        }
    }
}

/// The TLS configuration of a `SocketContext` (shared with its children). Internal.
#[napi]
pub struct TlsContextCore {
    context: Arc<TlsContext>,
}

#[napi]
impl TlsContextCore {
    /// Checks and loads everything (keys, certificates, roots); throws with a `code` otherwise.
    #[napi(constructor)]
    pub fn new(options: TlsOptionsInput) -> Result<Self> {
        let context = TlsContext::new(&options.into()).map_err(config_error)?;
        Ok(TlsContextCore { context: Arc::new(context) })
    }

    /// `setTls`: new handshakes use `options`; throws (changing nothing) if they are invalid.
    #[napi]
    pub fn set_options(&self, options: TlsOptionsInput) -> Result<()> {
        self.context.set_options(&options.into()).map_err(config_error)
    }

    #[napi]
    pub fn add_server_name(&self, pattern: String, options: TlsOptionsInput) -> Result<()> {
        self.context.add_server_name(&pattern, &options.into()).map_err(config_error)
    }

    #[napi]
    pub fn remove_server_name(&self, pattern: String) -> bool {
        self.context.remove_server_name(&pattern)
    }

    /// The pattern that serves `name` (a pattern finds itself).
    #[napi]
    pub fn find_server_name(&self, name: String) -> Option<String> {
        self.context.find_server_name(&name)
    }

    /// What a negative `code` of a close or connect error means, if it is a TLS failure.
    #[napi]
    pub fn describe_failure(code: i32) -> Option<TlsFailureDescription> {
        TlsFailure::from_code(code).map(|failure| TlsFailureDescription {
            code: failure.name().to_owned(),
            message: failure.message().to_owned(),
        })
    }

    /// Whether handshakes asking for unknown names wait for `onServerName`.
    #[napi]
    pub fn set_asks_for_names(&self, asks: bool) {
        self.context.set_asks_for_names(asks);
    }
}

impl TlsContextCore {
    fn server(&self) -> Result<Arc<TlsContext>> {
        if !self.context.can_serve() {
            return Err(napi::Error::new(
                ErrorCode("ERR_TLS_NO_CERTIFICATE"),
                "a TLS context listens only with a key and certificate (options.tls key/cert)".to_owned(),
            ));
        }
        Ok(Arc::clone(&self.context))
    }

    fn client(&self, host: &str) -> Result<ClientTls> {
        let name = self.context.server_name_for(host).map_err(config_error)?;
        Ok(ClientTls { context: Arc::clone(&self.context), name })
    }
}

/// The `code` and message of a TLS failure code from a close or connect-error record.
#[napi(object)]
pub struct TlsFailureDescription {
    pub code: String,
    pub message: String,
}

/// What a TLS socket's handshake settled.
#[napi(object)]
pub struct TlsSocketInfo {
    pub alpn_protocol: Option<String>,
    pub servername: Option<String>,
    pub peer_certificate: Option<Buffer>,
    pub version: Option<String>,
    pub cipher: Option<TlsCipher>,
    pub session_reused: bool,
}

/// `socket.cipher`, as `node:tls`'s `getCipher()`.
#[napi(object)]
pub struct TlsCipher {
    pub name: String,
    pub standard_name: String,
    pub version: String,
}

/// Batches of at least this many words move to JavaScript without a copy.
const EXTERNAL_BATCH_WORDS: usize = 64 * 1024 / 4;

/// An external batch JavaScript is done with goes back to `pool`, and what was counted for it
/// to V8 is taken back.
fn give_back(env: &Env, pool: &BatchPool, counted: i64, words: Vec<u32>) {
    // Only fails if the environment is going away, when nothing needs it.
    let _ = env.adjust_external_memory(-counted);
    pool.recycle(words);
}

/// One iteration on the JavaScript thread, which drives the loop (`PollerWatch` calls it when
/// the poller is ready or its timer due): the events it produced are dispatched at once.
fn drive(env: &Env, control: &WatchControl, event_loop: &EventLoop, deliver: &FunctionRef<(), ()>) {
    if control.failed() {
        // libuv gave up on the poller's descriptor: the loop thread's own wait copes with it.
        control.stop();
        event_loop.hand_back_drive();
        return;
    }
    // A panic must not unwind into libuv. It leaves the loop's state half-updated: the loop
    // ends, as it would on its own thread (the panic hook has reported it).
    let Ok(drive) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.drive())) else {
        control.stop();
        event_loop.stop();
        return;
    };
    let published = match drive {
        Drive::NotDriving => {
            control.stop();
            return;
        }
        Drive::HandedBack { published } => {
            control.stop();
            published
        }
        Drive::Driving { published, wake_after } => {
            control.wake_after(wake_after);
            published
        }
    };
    if published {
        // The doorbell's threadsafe function calls the same function; an exception escaping
        // it is reported as uncaught either way.
        if let Err(err) = deliver.borrow_back(env).and_then(|deliver| deliver.call(())) {
            env.fatal_exception(err);
        }
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
    /// The external batch handed out last, with what was counted for it: JavaScript gives it
    /// back after dispatching it if no handler kept a view of it (`release_batch`).
    lent: Cell<Option<(Lent, i64)>>,
    /// libuv watching the loop's poller, for the times the JavaScript thread drives the loop.
    watch: Option<PollerWatch>,
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
    pub fn new(
        env: Env,
        deliver: Function<(), ()>,
        max_pending_bytes: f64,
        spin_microseconds: f64,
        javascript_may_drive: bool,
    ) -> Result<Self> {
        let deliver_here = deliver.create_ref().map_err(napi_error)?;
        let doorbell = deliver
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|_| Ok(()))
            .map_err(napi_error)?;
        let config = LoopConfig {
            max_pending_bytes: max_pending_bytes as usize,
            spin: Duration::from_micros(spin_microseconds as u64),
            javascript_may_drive,
        };
        let watched = config.lets_javascript_drive();
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
            return Err(napi_error(err));
        }
        let watch = if watched {
            let driven = event_loop.clone();
            let on_wake = Box::new(move |env: &Env, control: &WatchControl| {
                drive(env, control, &driven, &deliver_here)
            });
            match PollerWatch::new(&env, event_loop.poller_fd(), on_wake) {
                Ok(watch) => Some(watch),
                Err(err) => {
                    event_loop.stop();
                    unregister_from_environment(&event_loop);
                    return Err(napi_error(err));
                }
            }
        } else {
            None
        };
        Ok(LoopCore { event_loop: Some(event_loop), js: RefCell::default(), lent: Cell::new(None), watch })
    }

    /// All pending event records (`[kind, index, stamp, arg]` each), or null when there are none.
    /// Taking acknowledges the records taken before: their callbacks have run.
    #[napi]
    pub fn take_batch<'env>(&self, env: &'env Env) -> Result<Option<Uint32ArraySlice<'env>>> {
        let Some(event_loop) = &self.event_loop else { return Ok(None) };
        let mut js = self.js.borrow_mut();
        if !event_loop.take_batch(&mut js) {
            // Everything is dispatched: the moment to take the driving if it is offered.
            if let Some(watch) = &self.watch {
                if event_loop.take_drive() {
                    if let Err(err) = watch.start() {
                        event_loop.hand_back_drive();
                        return Err(napi_error(err));
                    }
                }
            }
            return Ok(None);
        }
        // A large batch (bulk data) is handed over as it is, as external memory that V8 frees
        // with its last view, giving it back to the loop's pool (its pages already faulted in:
        // fresh ones cost the loop a fault and a zero-fill each); copying it would cost a
        // zero-fill and a copy per byte. A small one is cheaper to copy than to register with
        // the garbage collector. V8 counts the ArrayBuffer's length; the room beyond it (the
        // allocation is recycled whole) is counted here, so V8 sees what is really held. V8
        // collects only once 64 MiB of such memory accumulated since its last full collection.
        // While JavaScript keeps up, that is the right trade: the collections are a tenth of
        // the CPU of a bulk stream at 64 MiB and twice that at half of it. While JavaScript
        // falls behind (a slow consumer), the loop is waiting for it anyway, and 64 MiB of dead
        // batches on top of `maxPendingBytes` is the memory that matters (backpressure test,
        // 512 MiB at 8 MiB credit: +79 MiB peak RSS): then a batch is counted twice, so dead
        // ones are collected twice as soon (+47 MiB). The count is taken back when the batch is
        // collected.
        let records = if js.records().len() >= EXTERNAL_BATCH_WORDS {
            let words = js.take_records();
            let mut counted = (words.capacity() - words.len()) * 4;
            if event_loop.javascript_is_behind() {
                counted += words.capacity() * 4;
            }
            let counted = counted as i64;
            env.adjust_external_memory(counted).map_err(napi_error)?;
            let pool = event_loop.batch_pool();
            let (records, lent) = sys::external_u32_array(env, words, move |env, words| {
                give_back(&env, &pool, counted, words);
            })
            .map_err(napi_error)?;
            self.lent.set(lent.map(|lent| (lent, counted)));
            records
        } else {
            let copy = Uint32ArraySlice::copy_from(env, js.records()).map_err(napi_error)?;
            js.release_records();
            self.lent.set(None);
            copy
        };
        Ok(Some(records))
    }

    /// JavaScript is done with the batch whose records are in `buffer`, and every handler its
    /// views went to borrowed them (`borrowData`): the buffer is detached, so every view of it
    /// becomes empty, and an external batch's memory returns to the loop's pool now, while it
    /// is still in the cache, rather than after V8's next full collection (which also costs
    /// the collection: a tenth of a bulk stream's CPU).
    #[napi]
    pub fn release_batch(&self, env: &Env, buffer: ArrayBuffer) -> Result<()> {
        if let (Some((lent, counted)), Some(event_loop)) = (self.lent.take(), &self.event_loop) {
            if let Some(words) = lent.take_back(buffer).map_err(napi_error)? {
                give_back(env, &event_loop.batch_pool(), counted, words);
                return Ok(());
            }
        }
        buffer.detach().map_err(napi_error)
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
    pub fn listen(
        &self,
        host: Option<String>,
        port: u32,
        options: ListenOptionsInput,
        tls: Option<&TlsContextCore>,
    ) -> Result<f64> {
        let tls = tls.map(TlsContextCore::server).transpose()?;
        let addr = listen_address(host, port as u16)?;
        let options = options.into_options();
        let id = self.running()?.listen(&mut self.js.borrow_mut(), addr, options, tls).map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    #[napi]
    pub fn listen_unix(
        &self,
        path: String,
        options: ListenOptionsInput,
        tls: Option<&TlsContextCore>,
    ) -> Result<f64> {
        let tls = tls.map(TlsContextCore::server).transpose()?;
        let options = options.into_options();
        let id = self
            .running()?
            .listen_unix(&mut self.js.borrow_mut(), path.as_ref(), tls, options)
            .map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    /// Listens on an inherited listening descriptor, which the listener then owns; returns its
    /// id. Errors carry the errno code (`EBADF`, `ENOTSOCK`, `EINVAL` for one not listening).
    #[napi]
    pub fn listen_fd(
        &self,
        fd: i32,
        options: ListenOptionsInput,
        tls: Option<&TlsContextCore>,
    ) -> Result<f64> {
        let tls = tls.map(TlsContextCore::server).transpose()?;
        let options = options.into_options();
        let id = self.running()?.listen_fd(&mut self.js.borrow_mut(), fd, options, tls).map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    /// Takes over an inherited connected descriptor as an accepted socket (a TLS server with
    /// `tls`); returns the socket's id. Errors as `listen_fd` (`EINVAL` for a listening one,
    /// `ENOTCONN` for one not connected).
    #[napi]
    pub fn adopt_fd(&self, fd: i32, tls: Option<&TlsContextCore>) -> Result<f64> {
        let tls = tls.map(TlsContextCore::server).transpose()?;
        let event_loop = self.running()?;
        let id = event_loop.create_handle().map_err(js_error)?;
        if let Err(err) = event_loop.adopt_fd(&mut self.js.borrow_mut(), id, fd, tls) {
            event_loop.release(id);
            return Err(js_error(err));
        }
        Ok(id.pack() as f64)
    }

    /// The address a listener is bound to (a Unix socket's path), while it is open.
    #[napi]
    pub fn listener_host(&self, id: f64) -> Option<String> {
        self.event_loop
            .as_ref()
            .and_then(|event_loop| event_loop.listener_address(&self.js.borrow(), slot(id)))
            .map(|(host, _)| host)
    }

    /// The port a listener is bound to (-1 for Unix sockets, or once closed).
    #[napi]
    pub fn listener_port(&self, id: f64) -> i32 {
        self.event_loop
            .as_ref()
            .and_then(|event_loop| event_loop.listener_address(&self.js.borrow(), slot(id)))
            .map_or(-1, |(_, port)| port)
    }

    /// What a listener counted (`ListenSocket.rejectedConnections` / `droppedConnections`),
    /// while it is open.
    #[napi]
    pub fn listener_counts(&self, id: f64) -> Option<ListenerCountsOutput> {
        let (rejected, dropped) = self.event_loop.as_ref()?.listener_counts(&self.js.borrow(), slot(id))?;
        Some(ListenerCountsOutput { rejected: rejected as f64, dropped: dropped as f64 })
    }

    #[napi]
    pub fn close_listener(&self, id: f64) {
        self.if_running(|event_loop| event_loop.close_listener(&mut self.js.borrow_mut(), slot(id)));
    }

    /// Starts a connect; returns the socket's id at once. `source` must be an IP address.
    #[napi]
    pub fn connect(
        &self,
        host: String,
        port: u32,
        source: Option<String>,
        tls: Option<&TlsContextCore>,
    ) -> Result<f64> {
        let tls = tls.map(|tls| tls.client(&host)).transpose()?;
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
            .connect(&mut self.js.borrow_mut(), id, connect_target(host, port as u16), source, tls)
            .map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    /// Connects to a Unix socket; over TLS the certificate must be valid for `tls.servername`
    /// (default `localhost`).
    #[napi]
    pub fn connect_unix(&self, path: String, tls: Option<&TlsContextCore>) -> Result<f64> {
        let tls = tls.map(|tls| tls.client("localhost")).transpose()?;
        let event_loop = self.running()?;
        let id = event_loop.create_handle().map_err(js_error)?;
        event_loop
            .connect(&mut self.js.borrow_mut(), id, ConnectTarget::Unix(PathBuf::from(path)), None, tls)
            .map_err(js_error)?;
        Ok(id.pack() as f64)
    }

    /// `highWaterMark` bounds what a TLS write queues (plain TCP writes go to the kernel).
    #[napi]
    pub fn write(&self, id: f64, data: &[u8], more: bool, high_water_mark: f64) -> u32 {
        self.if_running(|event_loop| {
            event_loop.write(&self.js.borrow(), slot(id), data, more, high_water_mark as usize) as u32
        })
    }

    #[napi]
    pub fn write2(&self, id: f64, header: &[u8], payload: &[u8], high_water_mark: f64) -> u32 {
        self.if_running(|event_loop| {
            event_loop.write2(&self.js.borrow(), slot(id), header, payload, high_water_mark as usize) as u32
        })
    }

    /// Takes all of `data`; returns the bytes buffered natively afterwards.
    #[napi]
    pub fn send(&self, id: f64, data: &[u8], high_water_mark: f64) -> f64 {
        self.if_running(|event_loop| {
            event_loop.send(&self.js.borrow(), slot(id), data, high_water_mark as usize) as f64
        })
    }

    /// What the socket's TLS handshake settled (undefined for plain sockets or once closed).
    #[napi]
    pub fn tls_info(&self, id: f64) -> Option<TlsSocketInfo> {
        let info = self.event_loop.as_ref()?.tls_info(&self.js.borrow(), slot(id))?;
        Some(TlsSocketInfo {
            alpn_protocol: info.alpn_protocol,
            servername: info.server_name,
            peer_certificate: info.peer_certificate.map(Buffer::from),
            version: info.version.map(str::to_owned),
            cipher: info.cipher.map(|cipher| TlsCipher {
                name: cipher.name.to_owned(),
                standard_name: cipher.standard_name.to_owned(),
                version: cipher.version.to_owned(),
            }),
            session_reused: info.session_reused,
        })
    }

    /// STARTTLS: socket `id` becomes a TLS socket of `tls`; a client (`client`) verifies the
    /// server as `host` (the `servername` option or the connect host). Returns false if it is
    /// TLS already; throws for a closed socket, or a server context without a certificate.
    #[napi]
    pub fn upgrade(&self, id: f64, tls: &TlsContextCore, client: bool, host: String) -> Result<bool> {
        let (context, name) = if client {
            let ClientTls { context, name } = tls.client(&host)?;
            (context, Some(name))
        } else {
            (tls.server()?, None)
        };
        let event_loop = self.running()?;
        event_loop.upgrade(&self.js.borrow(), slot(id), context, name).map_err(js_error)
    }

    /// STARTTLS: the bytes JavaScript held back from socket `id` since `upgrade`.
    #[napi]
    pub fn upgrade_input(&self, id: f64, read_ahead: &[u8]) {
        self.if_running(|event_loop| event_loop.upgrade_input(slot(id), read_ahead.to_vec()));
    }

    /// RFC 5705 keying material of socket `id`'s TLS session (undefined without an open one).
    #[napi]
    pub fn export_keying_material(
        &self,
        id: f64,
        length: u32,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<Option<Buffer>> {
        let request = KeyingMaterialRequest {
            length: length as usize,
            label: label.to_vec(),
            context: context.map(<[u8]>::to_vec),
        };
        let material = self.running()?.export_keying_material(slot(id), request).map_err(js_error)?;
        Ok(material.map(Buffer::from))
    }

    /// The PROXY protocol header socket `id` began with (undefined without one, or once closed).
    #[napi]
    pub fn proxy_info(&self, id: f64) -> Option<ProxyInfo> {
        self.event_loop.as_ref()?.proxy_header(&self.js.borrow(), slot(id)).map(ProxyInfo::from)
    }

    /// JavaScript ran (or had no) `onServerName` for the handshake of socket `id`.
    #[napi]
    pub fn server_name_chosen(&self, id: f64) {
        self.if_running(|event_loop| event_loop.server_name_chosen(slot(id)));
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

    /// `socket.terminate()`: an abortive close (the peer sees a reset).
    #[napi]
    pub fn terminate_socket(&self, id: f64) {
        self.if_running(|event_loop| event_loop.terminate_socket(&mut self.js.borrow_mut(), slot(id)));
    }

    /// TCP keep-alive after `delay_seconds` of idleness (a whole number >= 1), or off (0).
    #[napi]
    pub fn set_keep_alive(&self, id: f64, delay_seconds: u32) -> Result<()> {
        let delay = (delay_seconds > 0).then(|| Duration::from_secs(u64::from(delay_seconds)));
        match &self.event_loop {
            Some(event_loop) => {
                event_loop.set_keepalive(&self.js.borrow(), slot(id), delay).map_err(js_error)
            }
            None => Ok(()),
        }
    }

    #[napi]
    pub fn set_no_delay(&self, id: f64, on: bool) -> Result<()> {
        match &self.event_loop {
            Some(event_loop) => event_loop.set_nodelay(&self.js.borrow(), slot(id), on).map_err(js_error),
            None => Ok(()),
        }
    }

    /// The kernel's view of a TCP socket's options, for the specs (undefined for Unix sockets
    /// or once closed).
    #[napi]
    pub fn tcp_options(&self, id: f64) -> Option<TcpOptionsOutput> {
        let (keep_alive, idle, interval, probes, no_delay) =
            self.event_loop.as_ref()?.tcp_options(&self.js.borrow(), slot(id))?;
        Some(TcpOptionsOutput {
            keep_alive,
            keep_alive_idle_seconds: idle.as_secs() as f64,
            keep_alive_interval_seconds: interval.as_secs() as f64,
            keep_alive_probes: probes,
            no_delay,
        })
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
        self.watch = None;
        if let Some(event_loop) = self.event_loop.take() {
            event_loop.stop();
            unregister_from_environment(&event_loop);
        }
        // The sockets' and listeners' fds close with the JavaScript side's share of them.
        *self.js.get_mut() = JsSide::default();
    }
}
