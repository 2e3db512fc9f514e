// @ts-check
// Timer: a slot on a loop whose Timer records (EVENT_TIMER) run its callback.
'use strict'

const { EVENT_TIMER, TIMER_FINAL } = require('../binding.js')
const { kStamp, kDispatch, kCloseByLoop } = require('./symbols.js')
const { validateFunction, validateInteger } = require('./validate.js')
const { LoopHandle, MAX_TIMER_MS } = require('./loop.js')

class Timer {
  #handle
  /** @type {((timer: Timer) => void) | null} */
  #callback = null

  /**
   * @param {import('./loop.js').Loop | null} [loop]
   * @param {import('../index.js').HandleOptions} [options]
   */
  constructor(loop, options) {
    this.#handle = new LoopHandle(this, loop, options)
    this[kStamp] = 0
  }

  get ext() {
    return this.#handle.ext
  }

  set ext(value) {
    this.#handle.ext = value
  }

  /**
   * @param {(timer: Timer) => void} callback
   * @param {number} ms
   * @param {number} [repeatMs]
   */
  set(callback, ms, repeatMs = 0) {
    validateFunction(callback, 'callback')
    validateInteger(ms, 'ms', 0, MAX_TIMER_MS)
    validateInteger(repeatMs, 'repeatMs', 0, MAX_TIMER_MS)
    const handle = this.#handle
    if (handle.gone) return
    if (ms === 0 && repeatMs === 0) {
      if (handle.active) {
        handle.deactivate(this)
        handle.state.core.disarmTimer(handle.id)
      }
      return
    }
    this.#callback = callback
    const stamp = handle.activate(this)
    handle.state.core.armTimer(handle.id, stamp, ms, repeatMs)
  }

  close() {
    if (this.#handle.gone) return
    this.#handle.close(this)
  }

  /**
   * @param {number} kind
   * @param {number} arg
   */
  [kDispatch](kind, arg) {
    if (kind !== EVENT_TIMER) return
    // A one-shot timer is unarmed before its callback runs, so the callback may set it again.
    if (arg & TIMER_FINAL) this.#handle.deactivate(this)
    // Armed, so set() gave it a callback. It runs with the timer as `this` too.
    const callback = /** @type {(this: Timer, timer: Timer) => void} */ (this.#callback)
    callback.call(this, this)
  }

  [kCloseByLoop]() {
    this.#handle.deactivate(this)
    this.#handle.closed = true
  }
}

module.exports = { Timer }
