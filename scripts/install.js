// Builds the native addon from source on `npm install`, in this repository and in projects that
// depend on the package. It needs a Rust toolchain (cargo); without one it says so and fails.
'use strict'
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const cargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' })
if (cargo.error || cargo.status !== 0) {
  console.error('usockets-rs: building the native addon needs Rust. Install it (https://rustup.rs) and run npm install again.')
  process.exit(1)
}
const napi = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
const cli = path.join(path.dirname(napi), require(napi).bin.napi)
const build = spawnSync(
  process.execPath,
  [cli, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: 'inherit' },
)
if (build.status !== 0) process.exit(build.status ?? 1)
// Installed as a dependency, the build directory (about 150 MB) is only a cache nobody reuses.
if (root.split(path.sep).includes('node_modules')) {
  require('node:fs').rmSync(path.join(root, 'target'), { recursive: true, force: true })
}
