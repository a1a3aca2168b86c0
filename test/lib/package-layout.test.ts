// The plugin package's folders and the one way its imports run: plugin/ -> gather/ ->
// succession/ -> exposition/, each of them -> run-dir/ -> lib/, and no module imports itself
// round a circle. Each folder's README.md states the same rule.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'

const SRC = resolve(__dirname, '../../packages/plugin/src')

/** What each folder may import besides itself. The entry points at the top may import anything. */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  plugin: ['gather', 'succession', 'exposition', 'run-dir', 'lib'],
  gather: ['succession', 'exposition', 'run-dir', 'lib'],
  succession: ['exposition', 'run-dir', 'lib'],
  exposition: ['lib'],
  'run-dir': ['lib'],
  lib: [],
}
const ENTRY = '.'

/** Module path (relative to src, with extension) -> the modules it imports relatively. */
type ImportGraph = Map<string, string[]>

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return /\.m?ts$/.test(entry.name) ? [path] : []
  })
}

/** Every module specifier of `import ... from`, `export ... from`, `import '...'`, `import()` and `require()`. */
function specifiersOf(source: string): string[] {
  const pattern =
    /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"\n]+)\1/gm
  return [...source.matchAll(pattern)].map((match) => match[2])
}

function resolveModule(fromFile: string, specifier: string): string {
  const base = resolve(dirname(fromFile), specifier.replace(/\.m?js$/, ''))
  const candidates = [`${base}.ts`, `${base}.mts`, join(base, 'index.ts')]
  const found = candidates.find((candidate) => existsSync(candidate))
  if (found === undefined)
    throw new Error(`${relative(SRC, fromFile)}: cannot resolve '${specifier}'`)
  return found
}

function packageGraph(): ImportGraph {
  const graph: ImportGraph = new Map()
  for (const file of sourceFiles(SRC)) {
    const targets = specifiersOf(readFileSync(file, 'utf8'))
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => relative(SRC, resolveModule(file, specifier)))
    graph.set(relative(SRC, file), targets)
  }
  return graph
}

function folderOf(module: string): string {
  const slash = module.indexOf('/')
  return slash === -1 ? ENTRY : module.slice(0, slash)
}

/** One line per import against the folders' order, or from a folder the order does not know. */
function directionViolations(graph: ImportGraph): string[] {
  const violations: string[] = []
  for (const [module, targets] of graph) {
    const from = folderOf(module)
    if (from === ENTRY) continue
    const allowed = MAY_IMPORT[from]
    if (allowed === undefined) {
      violations.push(`${module}: folder '${from}' has no place in the order`)
      continue
    }
    for (const target of targets) {
      const to = folderOf(target)
      if (to !== from && !allowed.includes(to)) violations.push(`${module} imports ${target}`)
    }
  }
  return violations
}

/** Every circle of imports, each as the modules round it (first one repeated at the end). */
function circles(graph: ImportGraph): string[][] {
  const found: string[][] = []
  const done = new Set<string>()
  const path: string[] = []
  const onPath = new Set<string>()
  const visit = (module: string): void => {
    if (onPath.has(module)) {
      found.push([...path.slice(path.indexOf(module)), module])
      return
    }
    if (done.has(module)) return
    onPath.add(module)
    path.push(module)
    for (const target of graph.get(module) ?? []) visit(target)
    path.pop()
    onPath.delete(module)
    done.add(module)
  }
  for (const module of graph.keys()) visit(module)
  return found
}

test('the package sources import one way between their folders', () => {
  const graph = packageGraph()
  // The parse sees the imports that hold the folders together, so an empty result means something.
  assert.ok(graph.get('gather/cluster-view.ts')?.includes('succession/succession.ts'))
  assert.ok(graph.get('plugin/index.ts')?.includes('exposition/exposition.ts'))
  assert.deepEqual(directionViolations(graph), [])
})

test('no module of the package imports itself round a circle', () => {
  assert.deepEqual(circles(packageGraph()), [])
})

test('an import against the order, or a circle, is found', () => {
  const graph: ImportGraph = new Map([
    ['exposition/exposition.ts', ['gather/cluster-view.ts', 'lib/problem-log.ts']],
    ['gather/cluster-view.ts', ['exposition/exposition.ts']],
    ['cluster/anything.ts', []],
    ['lib/problem-log.ts', []],
    ['index.ts', ['plugin/index.ts']],
  ])
  assert.deepEqual(directionViolations(graph), [
    'exposition/exposition.ts imports gather/cluster-view.ts',
    "cluster/anything.ts: folder 'cluster' has no place in the order",
  ])
  assert.deepEqual(circles(graph), [
    ['exposition/exposition.ts', 'gather/cluster-view.ts', 'exposition/exposition.ts'],
  ])
})

test('the specifiers of every import form are read', () => {
  const source = [
    "import { a } from './a'",
    "import type { B } from '../b'",
    "export { c } from './c'",
    "import './d'",
    "const e = require('./e')",
    "const f = await import('./f')",
    "import {\n  g,\n} from './g'",
  ].join('\n')
  assert.deepEqual(specifiersOf(source), ['./a', '../b', './c', './d', './e', './f', './g'])
})
