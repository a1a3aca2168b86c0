// One Node major everywhere: `engines`, the `node` dev dependency that npm scripts put first on
// PATH, the Dockerfile's base image, and the processes PM2 really runs (daemon and workers).
import assert from 'node:assert/strict'
import { readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { startPm2App } from '../../harness/pm2'
import { ROOT, runCommand } from '../../harness/stack'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string }
  devDependencies: Record<string, string>
}
const major = (version: string) => Number(/(\d+)/.exec(version)?.[1])
const engineMajor = major(pkg.engines.node)

/** The Node version of a running process, from the binary it really executes. */
function versionOf(pid: number): string {
  const exe = readlinkSync(`/proc/${pid}/exe`)
  const result = runCommand(exe, ['-p', 'process.version'])
  assert.equal(result.code, 0, result.stderr)
  return result.stdout.trim()
}

test('engines, the node dev dependency, the Dockerfile image and this test run one major', () => {
  assert.ok(engineMajor >= 24, `engines.node ${pkg.engines.node}`)
  assert.equal(major(pkg.devDependencies.node), engineMajor, 'the node dev dependency')
  const image = /^ARG NODE_IMAGE=node:(\S+)$/m.exec(
    readFileSync(join(ROOT, 'Dockerfile'), 'utf8'),
  )?.[1]
  assert.ok(image, 'NODE_IMAGE in the Dockerfile')
  assert.equal(major(image), engineMajor, `image node:${image}`)
  // npm scripts put node_modules/.bin first on PATH: `npm test` runs on the project's Node.
  assert.equal(major(process.version), engineMajor, `tests run on ${process.version}`)
})

test("PM2's daemon and its cluster workers run the project's Node major", async () => {
  const app = await startPm2App({ instances: 2 })
  try {
    const workers = await app.list()
    assert.equal(workers.length, 2)
    const daemonPid = Number(readFileSync(join(app.home, 'pm2.pid'), 'utf8').trim())
    for (const pid of [daemonPid, ...workers.map((w) => w.pid)]) {
      assert.equal(major(versionOf(pid)), engineMajor, `pid ${pid}`)
    }
  } finally {
    await app.stop()
  }
})
