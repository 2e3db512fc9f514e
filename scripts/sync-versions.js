// Keeps the platform packages in step with the main package: every npm/<platform>/package.json and
// every optionalDependencies entry (package.json's and package-lock.json's) gets package.json's
// version, and there is one platform package per napi target. With --check it changes nothing and
// fails when anything is out of step (CI runs that). `npm version <bump>` runs it through the
// `version` script.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const check = process.argv.includes('--check')
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
const writeJson = (file, value) => fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n')

const mainFile = path.join(root, 'package.json')
const main = readJson(mainFile)
const platforms = fs.readdirSync(path.join(root, 'npm')).sort()
const problems = []

// napi.targets are Rust triples; their platform names are what the npm/ folders are named after.
const { parseTriple } = require('@napi-rs/cli')
const targetPlatforms = main.napi.targets.map((t) => parseTriple(t).platformArchABI).sort()
if (targetPlatforms.join() !== platforms.join()) {
  console.error(`napi.targets (${targetPlatforms.join(', ')}) and npm/ (${platforms.join(', ')}) differ: run napi create-npm-dirs`)
  process.exit(1)
}

const optional = {}
for (const platform of platforms) {
  const file = path.join(root, 'npm', platform, 'package.json')
  const manifest = readJson(file)
  optional[manifest.name] = main.version
  if (manifest.version !== main.version) {
    problems.push(`${path.relative(root, file)}: version ${manifest.version}, not ${main.version}`)
    manifest.version = main.version
    if (!check) writeJson(file, manifest)
  }
}
if (JSON.stringify(main.optionalDependencies) !== JSON.stringify(optional)) {
  problems.push(`package.json optionalDependencies are not ${JSON.stringify(optional)}`)
  main.optionalDependencies = optional
  if (!check) writeJson(mainFile, main)
}
// `npm version` bumps the lockfile's own version but not its copy of the optionalDependencies.
const lockFile = path.join(root, 'package-lock.json')
const lock = readJson(lockFile)
if (JSON.stringify(lock.packages[''].optionalDependencies) !== JSON.stringify(optional)) {
  problems.push('package-lock.json optionalDependencies differ from package.json')
  lock.packages[''].optionalDependencies = optional
  if (!check) writeJson(lockFile, lock)
}

if (check && problems.length > 0) {
  console.error(`platform packages out of step (npm run version-sync fixes versions):\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
console.log(problems.length > 0 ? `updated:\n  ${problems.join('\n  ')}` : `platform packages in step at ${main.version}`)
