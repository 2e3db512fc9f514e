// Type definitions and reference documentation of usockets-rs (hand-written; the native layer's
// generated types are in binding.d.ts and are internal).
//
// Threads: every Loop runs a native thread; all callbacks below run on the JavaScript thread
// that created the Loop (the main thread or a worker_thread), never concurrently.

/** Poll interest / readiness bit: the fd can be read. */
export declare const READABLE: 1
/** Poll interest / readiness bit: the fd can be written. */
export declare const WRITABLE: 2
/** `listen` option: share the port with other listeners (SO_REUSEPORT), e.g. one loop per core. */
export declare const LISTEN_DEFAULT: 0
/** `listen` option: fail with `EADDRINUSE` if the port is taken. */
export declare const LISTEN_EXCLUSIVE_PORT: 1
/** Resolution of socket timeouts, in seconds: a timeout fires at most this much late. */
export declare const TIMEOUT_GRANULARITY: 4

/** The `code` of errors thrown for calls that need an open loop. */
export type LoopClosedCode = 'ERR_LOOP_CLOSED'

export interface LoopOptions {
  /**
   * Runs on the loop's JavaScript thread after `loop.wakeup()` was called (coalesced: many
   * calls before it runs give one call, and there is always at least one call after the last
   * `wakeup()` unless the loop is closed first).
   */
  onWakeup?: (loop: Loop) => void
  /**
   * The most bytes of events (and, for sockets, received data) the loop thread holds that
   * JavaScript has not dispatched yet. Past it the loop stops producing (sockets stop reading,
   * so TCP flow control pushes back on the peer) until JavaScript catches up; nothing is
   * dropped. Integer, 65536 to 2^40. Default 8 MiB.
   */
  maxPendingBytes?: number
}

/**
 * An event loop (`us_loop`): one native thread with an epoll poller that does the syscalls,
 * timers and (later) TLS work, and delivers events to JavaScript callbacks in batches.
 *
 * Liveness: the process (or worker) stays alive exactly while some Loop holds an active
 * non-fallthrough handle (an armed timer, a started poll, ...). An idle loop never keeps it
 * alive, and calling `run()` is not required for anything to work.
 *
 * A Loop lives until `close()` or until its JavaScript environment ends (process exit or
 * worker termination stops and joins its thread). Loops are not collected by the GC while open:
 * close loops you create in numbers.
 */
export declare class Loop {
  constructor(options?: LoopOptions)
  /**
   * The loop of this JavaScript thread (one per main thread / worker), created on first use.
   * Constructors given no loop use it. If it was closed, a new default loop is made.
   */
  static default(): Loop
  /** Any value the user wants to attach (`us_loop_ext`). `undefined` until set. */
  ext: unknown
  /**
   * Resolves once the loop holds no active non-fallthrough handle (at once if it holds none,
   * or is closed). The promise itself does not keep the process alive.
   */
  run(): Promise<void>
  /**
   * Asks for one `onWakeup` call on the loop's JavaScript thread. Cheap and coalesced: any
   * number of calls before it runs give one call. A pending wakeup does not keep the process
   * alive (as in uSockets). Throws `ERR_LOOP_CLOSED` on a closed loop.
   */
  wakeup(): void
  /** How many times the loop thread has woken up (polled) so far. */
  readonly iterationNumber: number
  /**
   * Closes every handle of the loop (their callbacks never run again), stops and joins the
   * thread. Afterwards creating a handle on it and `wakeup()` throw an Error with
   * `code: 'ERR_LOOP_CLOSED'`, `run()` resolves at once, and a second `close()` and every method
   * of its closed handles are harmless no-ops.
   */
  close(): void
}

export interface HandleOptions {
  /**
   * A fallthrough handle never keeps the process alive by itself (like an unref'd Node timer).
   * Default false.
   */
  fallthrough?: boolean
}

/**
 * A precise timer (`us_timer`), in milliseconds. It never fires early: the first call comes no
 * sooner than `ms` after `set()` returns. Good for a few timers; for per-socket timeouts use the
 * cheap coarse `socket.timeout()`.
 *
 * If JavaScript is busy past several periods of a repeating timer, the missed expirations
 * collapse into one call (as with timerfd): a timer never has more than one call queued.
 */
export declare class Timer {
  /**
   * @param loop the loop to run on; `Loop.default()` when omitted or null.
   * @throws an Error with `code: 'ERR_LOOP_CLOSED'` if the loop is closed.
   */
  constructor(loop?: Loop | null, options?: HandleOptions)
  /** Any value the user wants to attach (`us_timer_ext`). `undefined` until set. */
  ext: unknown
  /**
   * Arms the timer: `callback(timer)` runs `ms` milliseconds from now, then every `repeatMs`
   * milliseconds (0: once). A new `set` replaces the previous one, and expiries of the previous
   * one that were already queued are dropped. `set(cb, 0, 0)` disarms. `ms` and `repeatMs` are
   * integers from 0 to 2^31-1 (a first delay of 0 with a non-zero repeat fires at once, then
   * repeats). Armed and not fallthrough, the timer keeps the process alive; a one-shot timer
   * stops doing so just before its callback runs (which may arm it again). On a closed timer,
   * or a timer of a closed loop, `set` does nothing.
   */
  set(callback: (timer: Timer) => void, ms: number, repeatMs?: number): void
  /** Disarms and frees the timer (`us_timer_close`). Its callback never runs again. Idempotent. */
  close(): void
}

/**
 * Watches any pollable file descriptor (`us_poll`): a socket, pipe, FIFO, eventfd or tty.
 *
 * Delivery is level-triggered as JavaScript sees it: the callback gets the ready subset of the
 * mask; it is not called again while a call is pending or running; if the fd is still ready
 * after the callback returned, it is called again. A callback that drains the fd is not called
 * again until new data arrives. Errors and hang-ups are reported as the whole mask (the next
 * read or write sees the error).
 *
 * The poll never closes the fd, and it must be stopped before its owner closes the fd: a closed
 * fd number may be reused for another file, which the poll would then watch.
 */
export declare class Poll {
  /**
   * @param loop the loop to run on; `Loop.default()` when omitted or null.
   * @throws an Error with `code: 'ERR_LOOP_CLOSED'` if the loop is closed.
   */
  constructor(loop?: Loop | null, options?: HandleOptions)
  /** Any value the user wants to attach (`us_poll_ext`). `undefined` until set. */
  ext: unknown
  /** The fd given to `init` (`us_poll_fd`); -1 before. */
  readonly fd: number
  /** The current interest mask (`us_poll_events`): READABLE | WRITABLE bits. */
  readonly events: number
  /**
   * Sets the fd to watch (`us_poll_init`).
   * @throws an Error with `code: 'EPERM'` for a regular file or directory, `'EBADF'` for a
   * descriptor that is not open, `'ERR_POLL_STARTED'` while the poll is started.
   */
  init(fd: number): void
  /**
   * Starts watching for `events` (READABLE | WRITABLE; 0 watches nothing) and calls
   * `callback(poll, readyEvents)` when the fd is ready (`us_poll_start`). On a started poll it
   * changes the mask and callback. Started and not fallthrough, the poll keeps the process alive.
   * @throws `ERR_POLL_NOT_INITIALIZED` before `init`; `EEXIST` if another poll of the same loop
   * watches this fd; `EPERM` / `EBADF` from the kernel.
   */
  start(events: number, callback: (poll: Poll, events: number) => void): void
  /** Changes the interest mask (`us_poll_change`). */
  change(events: number): void
  /**
   * Stops watching (`us_poll_stop`); the callback never runs again until the next `start`,
   * even for readiness already queued. The fd stays open.
   */
  stop(): void
  /** Stops the poll and frees it for good (`us_poll_free`). The fd stays open. Idempotent. */
  close(): void
}
