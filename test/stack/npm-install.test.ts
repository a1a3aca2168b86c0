// The first command, `npm install`: every dependency's install script is a decision recorded in
// package.json, and the engine warnings that a machine's older Node draws (README) are the only
// ones: on the Node that npm scripts run on, npm finds every package's `engines` satisfied.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { test } from 'node:test'

const ROOT = join(__dirname, '..', '..')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  allowScripts?: Record<string, boolean>
}
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { hasInstallScript?: boolean }>
}

test('every package with an install script is allowed or denied by name in allowScripts', () => {
  const withScripts = Object.entries(lock.packages)
    .filter(([, entry]) => entry.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
  assert.ok(withScripts.includes('node'), 'the node dev dependency installs its binary')
  const decided = Object.keys(pkg.allowScripts ?? {})
  assert.deepEqual(
    withScripts.filter((name) => !decided.includes(name)),
    [],
    'npm install warns about these',
  )
  // The node package's script fetches the Node binary every npm script runs on.
  assert.equal(pkg.allowScripts?.node, true)
})

test("on the scripts' Node, npm finds no package whose engines refuse it", () => {
  // process.execPath is the node dev dependency's binary (test/stack/node-version.test.ts):
  // first on PATH, it is the Node that npm itself and its engine checks run on.
  const run = spawnSync(
    'npm',
    ['install', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` },
    },
  )
  assert.equal(run.status, 0, run.stderr)
  assert.doesNotMatch(`${run.stdout}${run.stderr}`, /EBADENGINE/)
})
