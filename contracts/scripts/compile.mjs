// Thin wrapper around the pinned solcjs compiler: standard JSON in (stdin), standard JSON out (stdout).
// Imports such as "@openzeppelin/contracts/..." resolve from contracts/node_modules; "src/..." from contracts/.
// Driven by `python -m edge.chain.build`, which builds the input and writes contracts/build/.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function findImports (path) {
  const candidates = [join(root, 'node_modules', path), join(root, path)]
  for (const file of candidates) {
    try {
      return { contents: readFileSync(file, 'utf8') }
    } catch {
      // try the next location
    }
  }
  return { error: `import not found: ${path} (looked in contracts/node_modules and contracts/)` }
}

if (process.argv.includes('--version')) {
  process.stdout.write(solc.version() + '\n')
  process.exit(0)
}
const input = readFileSync(0, 'utf8')
process.stdout.write(solc.compile(input, { import: findImports }))
