// The package's `install` script.
//
// Installed as a dependency: if a prebuilt binary loads (the usockets-rs-<platform> package that npm
// installs from optionalDependencies on the platforms that have one), there is nothing to do. Only
// without one does it build the addon from source, with cargo alone (no @napi-rs/cli, so users need
// no build tooling from npm), and fail with what to do when cargo is missing too.
//
// In a development checkout of this repository it always builds with `napi build` (what `npm run
// build` does), so that binding.js and binding.d.ts are regenerated and an older platform package
// from the registry never stands in for the code being worked on.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const pkg = require(path.join(root, 'package.json'))

// The platform name the generated loader (binding.js) looks for: usockets-rs.<triple>.node and the
// usockets-rs-<triple> package.
function platformTriple() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = !process.report.getReport().header.glibcVersionRuntime
    if (arch === 'arm') return `linux-arm-${musl ? 'musleabihf' : 'gnueabihf'}`
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc` // cargo's default Windows host is MSVC
  if (platform === 'android' && arch === 'arm') return 'android-arm-eabi'
  return `${platform}-${arch}`
}

// Loads binding.js in a child process, because a binary built for another libc or CPU can take
// down the process that loads it. Returns null when it loads, else the loader's reasons.
function loadFailure() {
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      // The loader's own message is generic; its chain of causes says what it tried, last first.
      `try { require('./binding.js') } catch (e) {
         const tried = []
         for (let c = e.cause ?? e; c; c = c.cause) tried.unshift('  ' + String(c.message).split('\\n')[0])
         console.error(tried.join('\\n'))
         process.exit(1)
       }`,
    ],
    { cwd: root, encoding: 'utf8' },
  )
  return probe.status === 0 ? null : probe.stderr.trimEnd() || `  the probe exited with ${probe.status ?? probe.signal}`
}

function fail(lines) {
  console.error(lines.join('\n'))
  process.exit(1)
}

function hasCargo() {
  const cargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' })
  return !cargo.error && cargo.status === 0
}

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

const triple = platformTriple()
const developing = !root.split(path.sep).includes('node_modules')

if (developing) {
  if (!hasCargo()) fail(['usockets-rs: building the native addon needs Rust. Install it (https://rustup.rs) and run npm install again.'])
  let cli
  try {
    const napi = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
    cli = path.join(path.dirname(napi), require(napi).bin.napi)
  } catch {
    fail(['usockets-rs: @napi-rs/cli (a devDependency) is missing: run npm install without --omit=dev.'])
  }
  run(process.execPath, [cli, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'])
  process.exit(0)
}

const why = loadFailure()
if (why === null) process.exit(0) // a prebuilt binary loads: nothing to compile

if (!hasCargo()) {
  fail([
    `usockets-rs: no prebuilt binary loads on this platform (${triple}), and building one from source needs Rust (cargo), which is not on PATH.`,
    'What the loader tried:',
    why,
    `The prebuilt binaries come in ${Object.keys(pkg.optionalDependencies).join(', ')}:`,
    'npm installs the one for your platform, if it is published, as an optional dependency (unless those are omitted).',
    'On any other platform, install Rust (https://rustup.rs) and run npm install again to build the addon from source.',
  ])
}

console.error(`usockets-rs: no prebuilt binary for ${triple}; building the native addon from source with cargo (a few minutes).`)
// Its own target directory, whatever CARGO_TARGET_DIR says: it is removed once the addon is copied out.
const targetDir = path.join(root, 'target')
const env = { ...process.env }
// musl targets link the C runtime statically by default, and rustc then drops the cdylib (the addon):
// `napi build` adds the same flag for them.
if (triple.includes('musl')) env.RUSTFLAGS = `${env.RUSTFLAGS ?? ''} -C target-feature=-crt-static`.trim()
run('cargo', ['build', '--release', '--lib', '--locked', '--target-dir', targetDir], env)
const library = { darwin: 'libusockets_rs.dylib', win32: 'usockets_rs.dll' }[process.platform] ?? 'libusockets_rs.so'
fs.copyFileSync(path.join(targetDir, 'release', library), path.join(root, `usockets-rs.${triple}.node`))
// The build directory (about 150 MB) is a cache nobody reuses once the addon is copied out.
fs.rmSync(targetDir, { recursive: true, force: true })

const built = loadFailure()
if (built !== null) fail([`usockets-rs: the addon built from source does not load on ${triple}:`, built])
console.error(`usockets-rs: built usockets-rs.${triple}.node from source.`)
