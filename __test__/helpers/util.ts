// Shared helpers for the specs (not a spec itself: ava only runs __test__/**/*.spec.ts).
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures')

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

export interface FixtureResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  elapsedMs: number
  timedOut: boolean
}

/** Runs `test/fixtures/<name>` in a fresh Node process (no tsx), measuring wall time. */
export function runFixture(name: string, args: string[] = [], timeoutMs = 10_000, nodeArgs: string[] = []): Promise<FixtureResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, [...nodeArgs, path.join(FIXTURES, name), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const killer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(killer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(killer)
      resolve({ code, signal, stdout, stderr, elapsedMs: performance.now() - start, timedOut })
    })
  })
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
