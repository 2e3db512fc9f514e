'use strict'
// The stress suite: `npm run stress [-- <scenario>...]` (not part of `npm test`: it takes minutes
// and loads the machine). Each scenario runs in a fresh `node --expose-gc` process and prints
// one JSON line; this prints each one's figures as it finishes, then a summary, and exits 1 if
// any bar was missed. The sizes come from each script's STRESS_* variables (see their headers).

const { spawn } = require('node:child_process')
const path = require('node:path')

const SCENARIOS = ['connections', 'churn', 'garbage', 'slow-peers', 'fd-exhaustion', 'workers', 'api-fuzz']
const SCENARIO_DEADLINE_MS = 10 * 60_000

function run(name) {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, ['--expose-gc', path.join(__dirname, `${name}.js`)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    const deadline = setTimeout(() => child.kill('SIGKILL'), SCENARIO_DEADLINE_MS)
    child.on('close', (code, signal) => {
      clearTimeout(deadline)
      const seconds = Math.round((performance.now() - started) / 100) / 10
      const line = output.split('\n').find((l) => l.startsWith('{'))
      let result
      try {
        result = line === undefined ? undefined : JSON.parse(line)
      } catch {
        result = undefined
      }
      const ok = code === 0 && result?.ok === true
      const why = result === undefined ? `no result (exit ${code ?? signal})` : result.failures.join('; ')
      resolve({ name, ok, seconds, why, result })
    })
  })
}

async function main() {
  const names = process.argv.slice(2)
  const unknown = names.filter((name) => !SCENARIOS.includes(name))
  if (unknown.length > 0) {
    console.error(`unknown scenario: ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`)
    process.exitCode = 2
    return
  }
  const outcomes = []
  for (const name of names.length > 0 ? names : SCENARIOS) {
    const outcome = await run(name)
    outcomes.push(outcome)
    const { scenario, ok, failures, ...figures } = outcome.result ?? {}
    console.log(`${outcome.ok ? 'ok  ' : 'FAIL'} ${name} (${outcome.seconds} s) ${JSON.stringify(figures)}`)
    if (!outcome.ok) console.log(`     ${outcome.why}`)
  }
  const failed = outcomes.filter((outcome) => !outcome.ok)
  console.log(`\n${outcomes.length - failed.length} of ${outcomes.length} scenarios held their bars`)
  process.exitCode = failed.length === 0 ? 0 : 1
}

main()
