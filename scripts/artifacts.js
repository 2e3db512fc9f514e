// `npm run artifacts [-- <dir>]`: copies each addon found, usockets-rs.<platform>.node, into its
// platform package npm/<platform>/, ready for `npm publish` there. Without <dir> it takes what
// `npm run build` wrote here; the release workflow passes the folder it downloaded the builds to.
// Unlike `napi artifacts`, which wants a binary for every napi target, it takes whichever
// platforms were built: the macOS and Windows ones cannot be yet (see RELEASING.md).
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const from = path.resolve(process.argv[2] ?? root)
const { binaryName } = require('../package.json').napi
// Only the top of the repository, not its npm/ folders; any depth of a download folder.
const found = process.argv[2] ? fs.readdirSync(from, { recursive: true }) : fs.readdirSync(from)
let copied = 0
for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
  const file = `${binaryName}.${platform}.node`
  const source = found.find((entry) => path.basename(entry) === file)
  if (source === undefined) continue
  fs.copyFileSync(path.join(from, source), path.join(root, 'npm', platform, file))
  console.log(`${path.relative(root, path.join(from, source))} -> npm/${platform}/`)
  copied++
}
if (copied === 0) {
  console.error(`no ${binaryName}.<platform>.node in ${from} for any npm/<platform>: run npm run build first`)
  process.exit(1)
}
