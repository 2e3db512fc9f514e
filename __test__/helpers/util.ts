// Shared helpers for the specs (not a spec itself: ava only runs __test__/**/*.spec.ts).
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { Loop, type LoopOptions } from '../..'

export const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures')

/** What the helpers need of ava's `t` to register cleanup. */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void
}

/** A fresh Loop, closed when the test ends. */
export function newLoop(t: Teardown, options?: LoopOptions): Loop {
  const loop = new Loop(options)
  t.teardown(() => loop.close())
  return loop
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Blocks the JS thread (so that native events pile up, undelivered). */
export function busyWait(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // spin
  }
}

/** Resolves true as soon as `cond()` holds, false after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 3000, stepMs = 2): Promise<boolean> {
  const end = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > end) return false
    await sleep(stepMs)
  }
  return true
}

/** Resolves when `promise` settles, or with `'timeout'` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Whether `promise` has already settled (checked after the pending microtasks ran). */
export async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending')
  const winner = await Promise.race([promise.then(() => true, () => true), new Promise((resolve) => setImmediate(() => resolve(marker)))])
  return winner !== marker
}

/**
 * A view of `value` whose methods take arguments of any type: for the specs of bad input, which
 * pass the wrong types on purpose. Everything else keeps its type.
 */
export type Loose<T> = { [K in keyof T]: T[K] extends (...args: never[]) => infer R ? (...args: unknown[]) => R : T[K] }

export function loose<T>(value: T): Loose<T> {
  return value as unknown as Loose<T>
}

/** `constructor` (public or not) taking arguments of any type, for the same specs. */
export function looseClass<T>(constructor: { prototype: T }): new (...args: unknown[]) => T {
  return constructor as unknown as new (...args: unknown[]) => T
}

/**
 * Asserts that `fn` throws an `instanceOf` error with `code` whose message names the argument
 * `name` (in double quotes).
 */
function argError(t: any, fn: () => unknown, name: string, instanceOf: typeof TypeError, code: string): void {
  const err = t.throws(fn, { instanceOf }, `expected a ${instanceOf.name} naming "${name}"`)
  t.is(err?.code, code, `code for "${name}"`)
  t.true((err?.message ?? '').includes(`"${name}"`), `message does not name "${name}": ${err?.message}`)
}

/** `fn` throws a TypeError ERR_INVALID_ARG_TYPE naming the argument `name`. */
export function typeError(t: any, fn: () => unknown, name: string): void {
  argError(t, fn, name, TypeError, 'ERR_INVALID_ARG_TYPE')
}

/** `fn` throws a RangeError ERR_OUT_OF_RANGE naming the argument `name`. */
export function rangeError(t: any, fn: () => unknown, name: string): void {
  argError(t, fn, name, RangeError, 'ERR_OUT_OF_RANGE')
}

/** A pollable descriptor made by Node alone: a FIFO opened read-write, non-blocking. */
export interface Fifo {
  path: string
  fd: number
  /** Writes `data` (all of it, or throws). */
  write(data: string | Buffer): void
  /** Everything readable right now (an empty Buffer when nothing is: EAGAIN). */
  readAll(): Buffer
  /** Closes the fd and removes the FIFO; idempotent. */
  close(): void
}

let fifoCounter = 0

export function makeFifo(): Fifo {
  const fifoPath = path.join(os.tmpdir(), `usockets-test-${process.pid}-${Date.now()}-${fifoCounter++}.fifo`)
  execFileSync('mkfifo', [fifoPath])
  const fd = fs.openSync(fifoPath, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
  let closed = false
  return {
    path: fifoPath,
    fd,
    write(data) {
      const buf = typeof data === 'string' ? Buffer.from(data) : data
      const n = fs.writeSync(fd, buf)
      if (n !== buf.length) throw new Error(`short write to the FIFO: ${n} of ${buf.length}`)
    },
    readAll() {
      const chunks: Buffer[] = []
      const buf = Buffer.alloc(65536)
      for (;;) {
        let n: number
        try {
          n = fs.readSync(fd, buf, 0, buf.length, null)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break
          throw err
        }
        if (n <= 0) break
        chunks.push(Buffer.from(buf.subarray(0, n)))
      }
      return Buffer.concat(chunks)
    },
    close() {
      if (closed) return
      closed = true
      fs.closeSync(fd)
      fs.rmSync(fifoPath, { force: true })
    },
  }
}

/** A FIFO closed (and removed) at the end of the test, after a loop made before it is closed. */
export function fifoFor(t: Teardown): Fifo {
  const fifo = makeFifo()
  t.teardown(() => fifo.close())
  return fifo
}

export interface FixtureResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  elapsedMs: number
  /** Killed for running longer than its `timeoutMs`. */
  timedOut: boolean
  /** Why the process was killed; null when it exited by itself. */
  killedBy: string | null
}

export interface ProcessOptions {
  /** The process is killed (SIGKILL) when it still runs after this long. */
  timeoutMs?: number
  /** Added to the environment (NODE_OPTIONS is always emptied: no tsx in the child). */
  env?: Record<string, string>
  /** The process is killed when it has not exited this long after it printed its first line. */
  exitAfterFirstLineMs?: number
}

/** Runs `node <args>` in a fresh process, collecting its output and measuring wall time. */
export function runNodeProcess(args: string[], options: ProcessOptions = {}): Promise<FixtureResult> {
  const { timeoutMs = 10_000, env = {}, exitAfterFirstLineMs } = options
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', ...env },
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let killedBy: string | null = null
    let exitTimer: NodeJS.Timeout | undefined
    const kill = (why: string) => {
      killedBy = why
      child.kill('SIGKILL')
    }
    const killer = setTimeout(() => {
      timedOut = true
      kill(`still running after ${timeoutMs} ms`)
    }, timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      if (exitAfterFirstLineMs !== undefined && exitTimer === undefined && stdout.includes('\n')) {
        exitTimer = setTimeout(
          () => kill(`printed its first line but did not exit by itself within ${exitAfterFirstLineMs} ms`),
          exitAfterFirstLineMs,
        )
      }
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const stopTimers = () => {
      clearTimeout(killer)
      clearTimeout(exitTimer)
    }
    child.on('error', (err) => {
      stopTimers()
      reject(err)
    })
    child.on('close', (code, signal) => {
      stopTimers()
      resolve({ code, signal, stdout, stderr, elapsedMs: performance.now() - start, timedOut, killedBy })
    })
  })
}

/** Runs `test/fixtures/<name>` in a fresh Node process (no tsx), measuring wall time. */
export function runFixture(name: string, args: string[] = [], timeoutMs = 10_000, nodeArgs: string[] = []): Promise<FixtureResult> {
  return runNodeProcess([...nodeArgs, path.join(FIXTURES, name), ...args], { timeoutMs })
}

/** The last line of `stdout` that parses as JSON. */
export function lastJson(stdout: string): any {
  const lines = stdout.trim().split('\n').reverse()
  for (const line of lines) {
    try {
      return JSON.parse(line)
    } catch {
      // not JSON
    }
  }
  throw new Error(`no JSON line in output: ${JSON.stringify(stdout)}`)
}

/**
 * The JSON summary that a script prints as its very last line. When that line is not JSON, fails
 * the test (with the exit status and the output) and returns undefined.
 */
export function jsonSummary(t: { fail(message?: string): void }, run: FixtureResult): any {
  try {
    return JSON.parse(run.stdout.trim().split('\n').pop() ?? '')
  } catch {
    t.fail(`no JSON summary (exit ${run.code}, signal ${run.signal}, killed: ${run.killedBy})\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
    return undefined
  }
}
