// @ts-check
// The loop: Loop, the LoopState it shares with its handles (the handle table that records'
// slot indices point into, the count of handles that keep the process alive, delivery), and
// LoopHandle, the slot that a Timer or a Poll holds on a loop.
'use strict'

const { LoopCore, SLOT_INDEX_RANGE } = require('../binding.js')
const { kState, kStamp, kCloseByLoop, kFlushSends, hideInternal } = require('./symbols.js')
const { loopClosedError, reportUncaught } = require('./errors.js')
const { invalidArgType, validateFunction, validateInteger, validateOptions } = require('./validate.js')
const { dispatchRecords } = require('./dispatch.js')

/** @typedef {import('./dispatch.js').LoopEntry} LoopEntry */

// How long one delivery dispatches batches before it lets Node's event loop run.
const DELIVERY_SLICE_MS = 5
const DEFAULT_MAX_PENDING_BYTES = 8 * 1024 * 1024
// Bits of LoopState.batchViews.
const VIEWS_LENT = 1
const VIEWS_KEPT = 2
const MIN_MAX_PENDING_BYTES = 64 * 1024
const MAX_MAX_PENDING_BYTES = 2 ** 40
// The loop thread's spin after a delivery is for latency, so it stays short: at most 10 ms.
const MAX_SPIN_MICROSECONDS = 10_000
// The longest delay Node's own timers accept; a Node interval of this length is what holds
// the process open while a loop has work (see LoopState.hold).
const MAX_TIMER_MS = 2 ** 31 - 1

function noop() {}

/** Everything a Loop shares with its handles. Not exported. */
class LoopState {
  /**
   * @param {Loop} loop
   * @param {number} maxPendingBytes
   * @param {number} spinMicroseconds
   * @param {boolean} driveFromJavaScript
   * @param {((loop: Loop) => void) | undefined} onWakeup
   */
  constructor(loop, maxPendingBytes, spinMicroseconds, driveFromJavaScript, onWakeup) {
    this.loop = loop
    this.onWakeup = onWakeup
    /**
     * Slot index -> the JS handle with an armed timer / started poll / open socket there.
     * @type {Array<LoopEntry | undefined>}
     */
    this.handles = []
    /** Active non-fallthrough handles (API.md "Liveness"). */
    this.holds = 0
    /**
     * A Node interval, ref'd exactly while holds > 0: what keeps the process (or worker) alive.
     * @type {NodeJS.Timeout | null}
     */
    this.keepAlive = null
    /** @type {Array<() => void>} */
    this.runWaiters = []
    this.nextStamp = 0
    this.closed = false
    this.closing = false
    /** True while a batch is being dispatched: run() settles after it, not in the middle. */
    this.dispatching = false
    /**
     * The views of its memory the batch being dispatched handed to handlers: VIEWS_LENT for
     * one to a borrowing handler (borrowData), VIEWS_KEPT for one to a handler that may keep
     * it. Only a batch whose views were all lent goes back to the loop when its dispatch
     * ends; the others V8's collector gives back.
     */
    this.batchViews = 0
    /**
     * UDP sockets whose send() calls of the batch being dispatched wait for one sendmmsg,
     * flushed when the batch's dispatch ends.
     * @type {import('./udp.js').UdpSocket[]}
     */
    this.coalescedSends = []
    this.lastIteration = 0
    this.core = new LoopCore(() => this.deliver(), maxPendingBytes, spinMicroseconds, driveFromJavaScript)
    // Handles forgotten without close(): free their native slot once they are collected.
    // (Armed or started handles are in `handles`, so they are never collected.)
    /** @type {FinalizationRegistry<number>} */
    this.collected = new FinalizationRegistry((id) => {
      if (!this.closed) this.core.releaseHandle(id)
    })
  }

  /**
   * Called through the threadsafe function whenever events are pending. Under a sustained flow
   * it yields to Node's event loop every DELIVERY_SLICE_MS, continuing from setImmediate, so
   * timers, I/O and the garbage collector's tasks keep running.
   */
  deliver() {
    const core = this.core
    const yieldAt = performance.now() + DELIVERY_SLICE_MS
    this.dispatching = true
    try {
      let records
      while ((records = core.takeBatch()) !== null) {
        this.batchViews = 0
        dispatchRecords(this, records)
        this.flushCoalescedSends()
        // Every view of the batch was lent: its memory goes back to the loop now, still in the
        // cache, and V8 has nothing to collect.
        if (this.batchViews === VIEWS_LENT && !this.closed) core.releaseBatch(/** @type {ArrayBuffer} */ (records.buffer))
        if (performance.now() >= yieldAt && !this.closed) {
          // The doorbell rings only once everything pending was taken: come back for the rest.
          setImmediate(() => this.deliver())
          break
        }
      }
    } finally {
      this.dispatching = false
      this.flushCoalescedSends()
    }
    // A handle released and held again within the batch (a one-shot timer whose callback
    // re-arms it) never made the loop idle.
    if (this.holds === 0) this.settleRun()
  }

  /**
   * A handler got a view of the batch being dispatched, lent (borrowData) or to keep.
   * @param {boolean} lent
   */
  handedOut(lent) {
    this.batchViews |= lent ? VIEWS_LENT : VIEWS_KEPT
  }

  /** Sends what UDP sockets coalesced during the batch just dispatched (one sendmmsg each). */
  flushCoalescedSends() {
    const sockets = this.coalescedSends
    if (sockets.length === 0) return
    this.coalescedSends = []
    for (const socket of sockets) {
      try {
        socket[kFlushSends]()
      } catch (err) {
        reportUncaught(err)
      }
    }
  }

  /** A stamp for a new arming; never 0, which marks a handle with nothing armed. */
  stamp() {
    this.nextStamp = this.nextStamp === 0xffffffff ? 1 : this.nextStamp + 1
    return this.nextStamp
  }

  /** Throws ERR_LOOP_CLOSED once close() has begun: nothing new may start on a closing loop. */
  checkOpen() {
    if (this.closing) throw loopClosedError()
  }

  createHandle() {
    this.checkOpen()
    return this.core.createHandle()
  }

  hold() {
    if (this.holds++ === 0) {
      if (this.keepAlive === null) this.keepAlive = setInterval(noop, MAX_TIMER_MS)
      else this.keepAlive.ref()
    }
  }

  release() {
    if (--this.holds === 0) {
      // Held before (hold() made the interval): never null here.
      this.keepAlive?.unref()
      if (!this.dispatching) this.settleRun()
    }
  }

  settleRun() {
    const waiters = this.runWaiters
    this.runWaiters = []
    for (const resolve of waiters) resolve()
  }

  /** @returns {Promise<void>} */
  run() {
    if (this.holds === 0 || this.closed) return Promise.resolve()
    return new Promise((resolve) => this.runWaiters.push(resolve))
  }

  close() {
    if (this.closed || this.closing) return
    // Handles close while the loop still runs, so open sockets get their onClose.
    this.closing = true
    for (const handle of this.handles) if (handle !== undefined) handle[kCloseByLoop]()
    this.lastIteration = this.core.iterationNumber
    this.closed = true
    this.handles = []
    this.core.close()
    if (this.keepAlive !== null) clearInterval(this.keepAlive)
    this.holds = 0
    this.settleRun()
  }
}

/** @type {Loop | null} */
let defaultLoop = null

class Loop {
  /**
   * @param {import('../index.js').LoopOptions} [options]
   */
  constructor(options) {
    const {
      onWakeup,
      maxPendingBytes = DEFAULT_MAX_PENDING_BYTES,
      spinMicroseconds = 0,
      driveFromJavaScript = true,
    } = validateOptions(options, 'options')
    if (onWakeup !== undefined) validateFunction(onWakeup, 'options.onWakeup')
    validateInteger(maxPendingBytes, 'options.maxPendingBytes', MIN_MAX_PENDING_BYTES, MAX_MAX_PENDING_BYTES)
    validateInteger(spinMicroseconds, 'options.spinMicroseconds', 0, MAX_SPIN_MICROSECONDS)
    if (typeof driveFromJavaScript !== 'boolean') {
      throw invalidArgType('options.driveFromJavaScript', 'of type boolean', driveFromJavaScript)
    }
    /** @type {unknown} */
    this.ext = undefined
    const wakeup = /** @type {((loop: Loop) => void) | undefined} */ (onWakeup)
    this[kState] = new LoopState(this, maxPendingBytes, spinMicroseconds, driveFromJavaScript, wakeup)
    hideInternal(this, kState)
  }

  /** The loop of this JS thread that constructors given no loop use. */
  static default() {
    if (defaultLoop === null || defaultLoop[kState].closed) defaultLoop = new Loop()
    return defaultLoop
  }

  run() {
    return this[kState].run()
  }

  wakeup() {
    const state = this[kState]
    if (state.closed) throw loopClosedError()
    state.core.wakeup()
  }

  get iterationNumber() {
    const state = this[kState]
    return state.closed ? state.lastIteration : state.core.iterationNumber
  }

  close() {
    this[kState].close()
  }
}

/**
 * A constructor's loop argument: none means the default loop.
 * @param {unknown} loop
 * @returns {Loop}
 */
function loopArgument(loop) {
  if (loop === undefined || loop === null) return Loop.default()
  if (!(loop instanceof Loop)) throw invalidArgType('loop', 'an instance of Loop', loop)
  return loop
}

/** Shared by Timer and Poll: a slot on a loop, and whether it keeps the process alive. */
class LoopHandle {
  #active = false

  /**
   * @param {LoopEntry} owner
   * @param {unknown} loop
   * @param {import('../index.js').HandleOptions | undefined} options
   */
  constructor(owner, loop, options) {
    const state = loopArgument(loop)[kState]
    const { fallthrough = false } = validateOptions(options, 'options')
    if (typeof fallthrough !== 'boolean') throw invalidArgType('options.fallthrough', 'of type boolean', fallthrough)
    /** @type {unknown} */
    this.ext = undefined
    this.id = state.createHandle()
    this.state = state
    this.fallthrough = fallthrough
    this.closed = false
    this.index = this.id % SLOT_INDEX_RANGE
    state.collected.register(owner, this.id, this)
  }

  /** Whether calls on it are no-ops: closed itself, or its loop is. */
  get gone() {
    return this.closed || this.state.closed
  }

  /**
   * Enters the dispatch table with a new stamp (dropping records of the previous arming).
   * @param {LoopEntry} owner
   */
  activate(owner) {
    const stamp = this.state.stamp()
    owner[kStamp] = stamp
    this.state.handles[this.index] = owner
    if (!this.#active) {
      this.#active = true
      if (!this.fallthrough) this.state.hold()
    }
    return stamp
  }

  /** @param {LoopEntry} owner */
  deactivate(owner) {
    owner[kStamp] = 0
    if (!this.#active) return
    this.#active = false
    if (this.state.handles[this.index] === owner) this.state.handles[this.index] = undefined
    if (!this.fallthrough && !this.state.closed) this.state.release()
  }

  get active() {
    return this.#active
  }

  /** @param {LoopEntry} owner */
  close(owner) {
    this.deactivate(owner)
    this.closed = true
    this.state.collected.unregister(this)
    if (!this.state.closed) this.state.core.releaseHandle(this.id)
  }
}

module.exports = { LoopState, Loop, loopArgument, LoopHandle, MAX_TIMER_MS }
