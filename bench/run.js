// Benchmark runner: `npm run bench [-- <scenario>...]`; with no name it runs every scenario.
//
// Each scenario runs in a fresh Node process, so one scenario's heap, JIT state and threads
// cannot skew the next. A scenario script prints one JSON object per measured case on stdout;
// the runner shows them as one table per scenario (columns: the objects' keys).
'use strict'

const { spawnSync } = require('node:child_process')
const os = require('node:os')
const path = require('node:path')

/** Scenario name -> script in this directory. */
const SCENARIOS = {
  delivery: 'delivery.js',
  tcp: 'tcp.js',
  tls: 'tls.js',
  workers: 'workers.js',
  udp: 'udp.js',
}

function formatCell(value) {
  if (value === null || value === undefined) return '-'
  if (typeof value !== 'number') return String(value)
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return String(Math.round(value))
  // Ratios and small per-operation costs need the second digit.
  return value.toFixed(Math.abs(value) < 10 ? 2 : 1)
}

function printTable(rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
  const lines = rows.map((row) =>
    columns.map((column) => ({ text: formatCell(row[column]), isNumber: typeof row[column] === 'number' })),
  )
  const widths = columns.map((column, i) => Math.max(column.length, ...lines.map((cells) => cells[i].text.length)))
  const pad = (cell, i) => (cell.isNumber ? cell.text.padStart(widths[i]) : cell.text.padEnd(widths[i]))
  console.log(columns.map((column, i) => pad({ text: column, isNumber: true }, i)).join('  '))
  for (const cells of lines) console.log(cells.map(pad).join('  '))
}

/**
 * Runs one scenario; returns false if it failed. Output that is not JSON is passed through
 * after the table, as notes on it.
 */
function runScenario(name) {
  console.log(`\n## ${name}\n`)
  const child = spawnSync(process.execPath, [path.join(__dirname, SCENARIOS[name])], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  })
  const rows = []
  const notes = []
  for (const line of (child.stdout ?? '').split('\n')) {
    if (line.startsWith('{')) rows.push(JSON.parse(line))
    else if (line !== '') notes.push(line)
  }
  if (rows.length > 0) printTable(rows)
  for (const note of notes) console.log(note)
  if (child.status === 0) return true
  console.error(`${name} failed: ${child.error ?? `exit code ${child.status}, signal ${child.signal}`}`)
  return false
}

function main() {
  const names = process.argv.slice(2)
  const unknown = names.filter((name) => !Object.hasOwn(SCENARIOS, name))
  if (unknown.length > 0) {
    console.error(`unknown scenario: ${unknown.join(', ')} (known: ${Object.keys(SCENARIOS).join(', ')})`)
    process.exitCode = 2
    return
  }
  const cpus = os.cpus()
  console.log(`node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}`)
  for (const name of names.length > 0 ? names : Object.keys(SCENARIOS)) {
    if (!runScenario(name)) process.exitCode = 1
  }
}

main()
