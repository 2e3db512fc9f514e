// CPU time per thread, and per process (or main thread) for other processes, read from /proc
// (Linux only).
// process.cpuUsage() sums every thread of this process; the benchmarks need to tell the JS
// thread apart from the loop threads to see which side of the delivery is the bottleneck, and
// to measure a server running in a child process.
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')

// utime and stime in /proc stat files count clock ticks of this length.
const NS_PER_TICK = 1e9 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))

/** User + system CPU time in a /proc `stat` file, in ns (resolution: one clock tick). */
function statCpuNs(statPath) {
  const stat = fs.readFileSync(statPath, 'utf8')
  // Field 2, the name, is in parentheses and may contain spaces: split after it.
  // The rest starts at field 3, so utime (field 14) and stime (15) are at 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * NS_PER_TICK
}

/** User + system CPU time of one thread of this process, in ns. */
function threadCpuNs(tid) {
  return statCpuNs(`/proc/self/task/${tid}/stat`)
}

/** User + system CPU time of a whole process, all its threads (exited ones too), in ns. */
function processCpuNs(pid) {
  return statCpuNs(`/proc/${pid}/stat`)
}

/**
 * User + system CPU time of the main thread of process `pid` (its thread id is the pid), in
 * ns: for a Node.js process, its JS thread.
 */
function mainThreadCpuNs(pid) {
  return statCpuNs(`/proc/${pid}/task/${pid}/stat`)
}

/**
 * CPU time all CPUs of the machine spent busy, in ns: everything but idle and iowait. Steal
 * counts as busy: in a VM it is time the host gave to someone else, which a benchmark loses.
 */
function machineBusyNs() {
  const stat = fs.readFileSync('/proc/stat', 'utf8')
  // The first line sums all CPUs: "cpu  user nice system idle iowait irq softirq steal ...".
  const fields = stat.slice(0, stat.indexOf('\n')).split(/\s+/).slice(1).map(Number)
  const [user, nice, system, , , irq, softirq, steal] = fields
  return (user + nice + system + irq + softirq + steal) * NS_PER_TICK
}

/** CPU time of the main JS thread, whose thread id is the process id. */
function jsThreadCpuNs() {
  return threadCpuNs(process.pid)
}

/** Summed CPU time of the threads of this process with the given name (e.g. 'usockets-loop'). */
function namedThreadsCpuNs(name) {
  let total = 0
  for (const tid of fs.readdirSync('/proc/self/task')) {
    if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trimEnd() === name) total += threadCpuNs(tid)
  }
  return total
}

module.exports = { jsThreadCpuNs, machineBusyNs, mainThreadCpuNs, namedThreadsCpuNs, processCpuNs }
