// Configuration from the environment: defaults, validation, and a clear failure at start.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import {
  resolveWorkerIdentity,
  STANDALONE_WORKER_ID,
} from '../packages/plugin/src/lib/worker-identity'
import {
  ConfigError,
  loadConfig,
  nativeHistogramsOf,
  parseBuckets,
  resolveMetricsToken,
  workerIdOf,
} from '../src/config'

test('defaults', () => {
  const config = loadConfig({})
  assert.equal(config.PORT, 5000)
  assert.equal(config.HOST, '0.0.0.0')
  assert.equal(config.METRICS_CLUSTER, true)
  assert.equal(config.METRICS_GATHER_TIMEOUT_MS, 1000)
  assert.deepEqual(
    parseBuckets(config.METRICS_BUCKETS),
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  )
})

test('values are coerced from strings', () => {
  const config = loadConfig({
    PORT: '8080',
    METRICS_CLUSTER: 'false',
    METRICS_BUCKETS: '0.1, 0.5,2',
  })
  assert.equal(config.PORT, 8080)
  assert.equal(config.METRICS_CLUSTER, false)
  assert.deepEqual(parseBuckets(config.METRICS_BUCKETS), [0.1, 0.5, 2])
})

test('each bad value is refused with a message naming the variable', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT must be integer/],
    [{ PORT: '70000' }, /PORT must be <= 65535/],
    [{ PORT: '0' }, /PORT must be >= 1/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be equal to one of the allowed values/],
    [{ METRICS_BUCKETS: '0.1,abc' }, /METRICS_BUCKETS must match pattern/],
    [{ METRICS_BUCKETS: '1,0.5' }, /METRICS_BUCKETS must be strictly increasing/],
    [{ METRICS_BUCKETS: '0,1' }, /METRICS_BUCKETS must be positive/],
    [{ METRICS_GATHER_TIMEOUT_MS: '5' }, /METRICS_GATHER_TIMEOUT_MS must be >= 10/],
    [{ METRICS_CLUSTER: 'maybe' }, /METRICS_CLUSTER must be boolean/],
    [{ METRICS_NATIVE_HISTOGRAMS: 'yes' }, /METRICS_NATIVE_HISTOGRAMS must be boolean/],
    [
      { METRICS_NATIVE_HISTOGRAMS: 'true', METRICS_NATIVE_HISTOGRAM_SCHEMA: '9' },
      /METRICS_NATIVE_HISTOGRAM_SCHEMA must be <= 8/,
    ],
    [
      { METRICS_NATIVE_HISTOGRAMS: 'true', METRICS_NATIVE_HISTOGRAM_SCHEMA: '-5' },
      /METRICS_NATIVE_HISTOGRAM_SCHEMA must be >= -4/,
    ],
    [
      { METRICS_NATIVE_HISTOGRAMS: 'true', METRICS_NATIVE_HISTOGRAM_SCHEMA: '2.5' },
      /METRICS_NATIVE_HISTOGRAM_SCHEMA must be integer/,
    ],
    [
      { METRICS_NATIVE_HISTOGRAMS: 'true', METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS: '0' },
      /METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS must be >= 1/,
    ],
    [
      { METRICS_NATIVE_HISTOGRAM_SCHEMA: '2' },
      /METRICS_NATIVE_HISTOGRAM_SCHEMA is set but METRICS_NATIVE_HISTOGRAMS is not true/,
    ],
    [
      { METRICS_NATIVE_HISTOGRAMS: 'false', METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS: '50' },
      /METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS is set but METRICS_NATIVE_HISTOGRAMS is not true/,
    ],
    [{ METRICS_TOKEN: 'short' }, /METRICS_TOKEN must match pattern/],
    [{ METRICS_TOKEN: 'a-long-enough-token\n' }, /METRICS_TOKEN must match pattern/],
    [{ METRICS_TOKEN: '                    ' }, /METRICS_TOKEN must match pattern/],
    [{ METRICS_TOKEN: 'a long enough token with spaces' }, /METRICS_TOKEN must match pattern/],
    // A /slow request taken in the first 0.5 s of a stop must end 0.5 s before the 4 s grace
    // does, or a reload would cut it off.
    [{ SLOW_MAX_MS: '3001' }, /SLOW_MAX_MS must be <= 3000/],
    [{ WORKER_ID: 'web.1' }, /WORKER_ID must match pattern/],
    [
      { WORKER_ID: '' },
      /WORKER_ID must NOT have fewer than 1 characters|WORKER_ID must match pattern/,
    ],
  ]
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig(env),
      (err: Error) => err instanceof ConfigError && message.test(err.message),
    )
  }
})

test('native histograms are off by default, and on with schema 3 and 160 buckets unless set', () => {
  assert.equal(nativeHistogramsOf(loadConfig({})), false)
  assert.deepEqual(nativeHistogramsOf(loadConfig({ METRICS_NATIVE_HISTOGRAMS: 'true' })), {
    schema: 3,
    maxBuckets: 160,
  })
  assert.deepEqual(
    nativeHistogramsOf(
      loadConfig({
        METRICS_NATIVE_HISTOGRAMS: 'true',
        METRICS_NATIVE_HISTOGRAM_SCHEMA: '-4',
        METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS: '10000',
      }),
    ),
    { schema: -4, maxBuckets: 10000 },
  )
})

test('the metrics token comes from the environment or a file, not both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'config-test-'))
  const file = join(dir, 'token')
  writeFileSync(file, 'file-token-0123456789\n')
  assert.equal(
    resolveMetricsToken(loadConfig({ METRICS_TOKEN_FILE: file })),
    'file-token-0123456789',
  )
  assert.equal(
    resolveMetricsToken(loadConfig({ METRICS_TOKEN: 'env-token-0123456789' })),
    'env-token-0123456789',
  )
  assert.equal(resolveMetricsToken(loadConfig({})), undefined)
  assert.throws(
    () =>
      resolveMetricsToken(
        loadConfig({ METRICS_TOKEN: 'env-token-0123456789', METRICS_TOKEN_FILE: file }),
      ),
    /not both/,
  )
  assert.throws(
    () => resolveMetricsToken(loadConfig({ METRICS_TOKEN_FILE: join(dir, 'missing') })),
    /METRICS_TOKEN_FILE cannot be read/,
  )
  for (const content of ['   \n', 'two tokens-0123456789\n', 'short\n']) {
    writeFileSync(file, content)
    assert.throws(
      () => resolveMetricsToken(loadConfig({ METRICS_TOKEN_FILE: file })),
      /METRICS_TOKEN_FILE must hold one token/,
      JSON.stringify(content),
    )
  }
})

test('one WORKER_ID for every worker of a PM2 cluster app is refused, naming it', () => {
  const pm2 = { pm_id: '1', name: 'web', exec_mode: 'cluster_mode', NODE_APP_INSTANCE: '1' }
  const config = loadConfig({ WORKER_ID: 'web' })
  assert.throws(
    () => workerIdOf(config, resolveWorkerIdentity({ ...pm2, instances: '5' })),
    /WORKER_ID would give every PM2 worker the same id/,
  )
  assert.equal(workerIdOf(config, resolveWorkerIdentity({ ...pm2, instances: '1' })), 'web')
  assert.equal(workerIdOf(config, resolveWorkerIdentity({})), 'web')
  assert.equal(workerIdOf(loadConfig({}), resolveWorkerIdentity(pm2)), '1')
})

test('the plugin reads PM2’s variables only: a WORKER_ID in the environment changes no worker id', () => {
  const pm2 = { pm_id: '1', name: 'web', exec_mode: 'cluster_mode', NODE_APP_INSTANCE: '1' }
  assert.equal(resolveWorkerIdentity({ ...pm2, instances: '5', WORKER_ID: 'web' }).workerId, '1')
  assert.equal(resolveWorkerIdentity({ WORKER_ID: 'web' }).workerId, STANDALONE_WORKER_ID)
})

test('worker identity follows PM2, including a renamed instance variable', () => {
  assert.deepEqual(resolveWorkerIdentity({}), {
    workerId: STANDALONE_WORKER_ID,
    clusterMode: false,
    appName: undefined,
    instances: undefined,
  })
  const pm2 = {
    pm_id: '7',
    name: 'web',
    exec_mode: 'cluster_mode',
    instances: '5',
    NODE_APP_INSTANCE: '2',
  }
  assert.deepEqual(resolveWorkerIdentity(pm2), {
    workerId: '2',
    clusterMode: true,
    appName: 'web',
    instances: 5,
  })
  const renamed = {
    ...pm2,
    NODE_APP_INSTANCE: undefined,
    instance_var: 'INSTANCE_ID',
    INSTANCE_ID: '4',
  }
  assert.equal(resolveWorkerIdentity(renamed).workerId, '4')
  assert.equal(resolveWorkerIdentity({ ...pm2, exec_mode: 'fork_mode' }).clusterMode, false)
  assert.equal(
    resolveWorkerIdentity({ ...pm2, instances: 'max' }).instances,
    availableParallelism(),
  )
})

test('the server exits non-zero with the variable named when started with a bad PORT', () => {
  const result = spawnSync(process.execPath, ['dist/server.js'], {
    env: { PATH: process.env.PATH, PORT: 'not-a-port' },
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(result.status, 1)
  assert.match(result.stderr, /invalid configuration: env\/PORT must be integer/)
})

test('PM2 refuses a bad INSTANCES when loading the ecosystem file', () => {
  const result = spawnSync(process.execPath, ['-e', "require('./ecosystem.config.js')"], {
    env: { PATH: process.env.PATH, INSTANCES: 'lots' },
    encoding: 'utf8',
  })
  assert.notEqual(result.status, 0)
  assert.match(result.stderr, /invalid configuration: env\/INSTANCES/)
})
