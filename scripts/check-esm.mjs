// Fails when index.mjs's named exports drift from index.js's exports: a name added to the
// CommonJS module and not to the ESM wrapper would be missing for `import { name }`.
import { createRequire } from 'node:module'

const cjs = createRequire(import.meta.url)('../index.js')
const esm = await import('../index.mjs')
const cjsNames = Object.keys(cjs).sort()
const esmNames = Object.keys(esm).filter((name) => name !== 'default').sort()
const missing = cjsNames.filter((name) => !esmNames.includes(name))
const extra = esmNames.filter((name) => !cjsNames.includes(name))
const different = esmNames.filter((name) => cjsNames.includes(name) && esm[name] !== cjs[name])
if (missing.length + extra.length + different.length > 0 || esm.default !== cjs) {
  console.error('index.mjs and index.js export different things:')
  if (missing.length > 0) console.error(`  missing from index.mjs: ${missing.join(', ')}`)
  if (extra.length > 0) console.error(`  only in index.mjs: ${extra.join(', ')}`)
  if (different.length > 0) console.error(`  other values: ${different.join(', ')}`)
  if (esm.default !== cjs) console.error('  the default export is not the CommonJS module')
  process.exit(1)
}
console.log(`index.mjs exports the ${cjsNames.length} names of index.js`)
