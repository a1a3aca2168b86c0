// The default socket directory under a long TMPDIR (macOS gives ~50 bytes, some hosts far more):
// the plugin and the service still start, and one worker's /metrics gathers its sibling over
// real unix sockets. A directory the user names is checked against the worker's own id, and
// its error names the plugin option.
import assert from 'node:assert/strict'
import { lstatSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import metricsPlugin from '../../packages/plugin/src/plugin'
import { socketDirFor } from '../../packages/plugin/src/run-dir/socket-paths'
import { buildApp } from '../../src/app'
import { loadConfig } from '../../src/config'

const base = mkdtempSync(join(tmpdir(), 'socket-dir-'))
after(() => rmSync(base, { recursive: true, force: true }))

/** A directory of exactly `bytes` bytes, nested as a macOS TMPDIR is (`/var/folders/…/T`). */
function nestedDirOfLength(bytes: number): string {
  let dir = base
  while (Buffer.byteLength(dir) < bytes - 40) dir = join(dir, 'n'.repeat(30))
  dir = join(dir, 'x'.repeat(bytes - Buffer.byteLength(dir) - 1))
  mkdirSync(dir, { recursive: true })
  assert.equal(Buffer.byteLength(dir), bytes)
  return dir
}

interface TestContext {
  after: (fn: () => unknown) => void
}

/** Sets TMPDIR for the test; afterwards closes `apps`, removes `key`'s directory, restores it. */
function longTmpdir(t: TestContext, key: string, apps: FastifyInstance[]): string {
  const dir = nestedDirOfLength(200)
  const previous = process.env.TMPDIR
  process.env.TMPDIR = dir
  t.after(async () => {
    for (const app of apps) await app.close()
    rmSync(socketDirFor(key), { recursive: true, force: true })
    if (previous === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previous
  })
  return dir
}

function assertPrivateDefault(dir: string, tmp: string): void {
  // Not under the long TMPDIR: no socket fits there. A private directory of this user instead.
  assert.ok(!dir.startsWith(tmp), dir)
  for (const path of [dir, dirname(dir)]) {
    const stat = lstatSync(path)
    assert.ok(stat.isDirectory(), path)
    assert.equal(stat.uid, process.getuid?.())
    assert.equal(stat.mode & 0o077, 0, `${path} is private`)
  }
}

test('under a 200-byte TMPDIR, the plugin’s default socket directory serves and /metrics gathers the sibling', async (t) => {
  const key = `long-tmpdir-${process.pid}`
  const apps: FastifyInstance[] = []
  const tmp = longTmpdir(t, key, apps)
  for (const workerId of ['0', '1']) {
    const app = Fastify()
    apps.push(app)
    await app.register(metricsPlugin, { workerId, cluster: { key }, defaultMetrics: false })
    app.get('/orders/:id', async () => ({ ok: true }))
    await app.ready()
  }
  for (let i = 0; i < 2; i++) assert.equal((await apps[1].inject('/orders/7')).statusCode, 200)

  const res = await apps[0].inject('/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /^cluster_metrics_worker_up\{worker_id="1"\} 1$/m)
  assert.match(
    res.body,
    /^http_requests_total\{method="GET",route="\/orders\/:id",status_code="200",worker_id="1"\} 2$/m,
  )
  assertPrivateDefault(socketDirFor(key), tmp)
})

test('under a 200-byte TMPDIR, the service (its key adds app name and port) starts and gathers the sibling', async (t) => {
  const appName = `long-${process.pid}`
  const config = loadConfig({ PORT: '5077' })
  const apps: FastifyInstance[] = []
  const tmp = longTmpdir(t, `${appName}-5077`, apps)
  for (const workerId of ['0', '1']) {
    const identity = { workerId, clusterMode: true, appName, instances: 2 }
    const app = await buildApp(config, { identity, logger: false })
    apps.push(app)
    await app.ready()
  }
  assert.equal((await apps[1].inject('/items/3')).statusCode, 200)

  const res = await apps[0].inject('/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /^cluster_metrics_worker_up\{worker_id="1"\} 1$/m)
  assert.match(
    res.body,
    /^http_requests_total\{method="GET",route="\/items\/:id",status_code="200",worker_id="1"\} 1$/m,
  )
  assertPrivateDefault(socketDirFor(`${appName}-5077`), tmp)
})

test('a named socket directory fits the worker’s own id, and one too long is refused naming cluster.socketDir', async (t) => {
  // 60 bytes: a socket of worker "0" fits (~85 bytes), one of a 32-character id would not.
  const fits = nestedDirOfLength(60)
  const served = Fastify()
  t.after(() => served.close())
  await served.register(metricsPlugin, {
    workerId: '0',
    cluster: { key: 'named', socketDir: join(fits, 's') },
    defaultMetrics: false,
  })
  await served.ready()
  assert.match(
    (await served.inject('/metrics')).body,
    /^cluster_metrics_worker_up\{worker_id="0"\} 1$/m,
  )

  const tooLong = nestedDirOfLength(120)
  const refused = Fastify()
  t.after(() => refused.close())
  await assert.rejects(
    async () => {
      await refused.register(metricsPlugin, {
        workerId: '0',
        cluster: { key: 'named', socketDir: tooLong },
        defaultMetrics: false,
      })
    },
    (err: Error) => {
      assert.ok(err.message.includes(JSON.stringify(tooLong)), err.message)
      assert.match(
        err.message,
        /too long for a unix socket path.*set the plugin option cluster\.socketDir/,
      )
      assert.doesNotMatch(err.message, /METRICS_SOCKET_DIR/)
      return true
    },
  )
})
