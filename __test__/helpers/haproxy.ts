// HAProxy as a real PROXY protocol peer for the specs (not a spec itself): a TCP-mode frontend
// on a free port in front of one backend server. `.ci/run` installs Debian's haproxy when it is
// missing; a spec fails (it does not skip) without one.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import type { Teardown } from './util'
import { closedPort } from './net'

export function haproxyCommand(): string {
  for (const candidate of ['haproxy', '/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) {
    if (spawnSync(candidate, ['-v'], { timeout: 5000 }).status === 0) return candidate
  }
  throw new Error('haproxy is not installed (apt-get install haproxy; .ci/run does it)')
}


/** Whether some process listens on 127.0.0.1:`port` (Linux: /proc/net/tcp, state 0A). */
function listensOn(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/)
      return fields[1] === local && fields[3] === '0A'
    })
}

export interface HaproxyOptions {
  /** The backend server's port on 127.0.0.1. */
  backendPort: number
  /** What follows `server s 127.0.0.1:<port>`: e.g. `send-proxy`, `send-proxy-v2 proxy-v2-options crc32c`. */
  serverOptions: string
  /** Extra `bind` options of the frontend, e.g. `ssl crt /path/combined.pem`. */
  bindOptions?: string
  /** Extra frontend lines, e.g. `unique-id-format ...`. */
  frontendLines?: string[]
}

/** Starts HAProxy in the foreground; resolves with its frontend port once it listens. */
export async function startHaproxy(t: Teardown, options: HaproxyOptions): Promise<{ port: number; process: ChildProcess }> {
  const port = await closedPort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usockets-haproxy-'))
  const config = [
    'global',
    '  maxconn 256',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend in',
    `  bind 127.0.0.1:${port} ${options.bindOptions ?? ''}`,
    ...(options.frontendLines ?? []).map((line) => `  ${line}`),
    '  default_backend out',
    'backend out',
    `  server s 127.0.0.1:${options.backendPort} ${options.serverOptions}`,
    '',
  ].join('\n')
  const file = path.join(dir, 'haproxy.cfg')
  fs.writeFileSync(file, config)
  const child = spawn(haproxyCommand(), ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  t.teardown(() => {
    child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr}\n${config}`)
    // Not a probe connection: HAProxy would relay it to the backend under test.
    const listening = listensOn(port)
    if (listening) return { port, process: child }
    if (Date.now() > deadline) throw new Error(`haproxy never listened: ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
