// The compose override that protects /metrics with a token: it merges with the base file, hands
// the token to both containers as a secret, and its Prometheus config differs from the base one
// by the authorization block alone (promtool accepts it with a real credentials file).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import {
  PROMETHEUS_CONFIG,
  PROMETHEUS_DIR,
  PROMTOOL_BIN,
  parseYaml,
  ROOT,
  readYaml,
  runCommand,
} from '../../harness/stack'

const TOKEN_CONFIG = join(PROMETHEUS_DIR, 'prometheus.metrics-token.yml')

interface ScrapeConfig {
  job_name: string
  authorization?: { type: string; credentials_file: string }
}

test('the override merges: the token goes to webapp and Prometheus as a secret', () => {
  const result = runCommand(
    'docker-compose',
    [
      '-f',
      join(ROOT, 'docker-compose.yml'),
      '-f',
      join(ROOT, 'docker-compose.metrics-token.yml'),
      'config',
    ],
    {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    },
  )
  assert.equal(result.code, 0, result.stderr)
  const config = parseYaml<{
    services: Record<
      string,
      {
        environment?: Record<string, string>
        secrets?: Array<{ source: string }>
        command?: string[]
        volumes?: string[]
      }
    >
    secrets: Record<string, { file: string }>
  }>(result.stdout)
  const { webapp, prometheus } = config.services
  assert.equal(webapp.environment?.METRICS_TOKEN_FILE, '/run/secrets/metrics_token')
  assert.deepEqual(
    webapp.secrets?.map((s) => s.source),
    ['metrics_token'],
  )
  assert.deepEqual(
    prometheus.secrets?.map((s) => s.source),
    ['metrics_token'],
  )
  // Compose replaces a command whole: the override's is the base one with only the config file
  // swapped, so exemplar storage and retention stay.
  const base = readYaml<{ services: { prometheus: { command: string[] } } }>(
    join(ROOT, 'docker-compose.yml'),
  ).services.prometheus.command
  assert.deepEqual(
    prometheus.command,
    base.map((flag) =>
      flag.startsWith('--config.file=')
        ? '--config.file=/etc/prometheus/prometheus.metrics-token.yml'
        : flag,
    ),
  )
  const mounts = (prometheus.volumes ?? []).map((v) => String(v))
  assert.ok(mounts.some((v) => v.endsWith(':/etc/prometheus/prometheus.metrics-token.yml:ro')))
  assert.ok(
    mounts.some((v) => v.endsWith(':/etc/prometheus/rules:ro')),
    'rules still mounted',
  )
  assert.equal(config.secrets.metrics_token.file, join(ROOT, 'secrets', 'metrics_token'))
  assert.equal(
    webapp.environment?.METRICS_TOKEN,
    undefined,
    'the token itself is never in the environment',
  )
})

test('the token config is the base config plus an authorization block on the webapp job', () => {
  const base = readYaml<{ scrape_configs: ScrapeConfig[] }>(PROMETHEUS_CONFIG)
  const withToken = readYaml<{ scrape_configs: ScrapeConfig[] }>(TOKEN_CONFIG)
  const webapp = withToken.scrape_configs.find((c) => c.job_name === 'webapp')
  assert.deepEqual(webapp?.authorization, {
    type: 'Bearer',
    credentials_file: '/run/secrets/metrics_token',
  })
  delete webapp?.authorization
  assert.deepEqual(withToken, base)
})

test('promtool check config accepts it with a real credentials file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'token-config-'))
  try {
    const tokenFile = join(dir, 'metrics_token')
    writeFileSync(tokenFile, 'a-token-of-at-least-16-chars\n')
    const config = join(PROMETHEUS_DIR, `.check-${process.pid}.yml`)
    writeFileSync(
      config,
      readFileSync(TOKEN_CONFIG, 'utf8').replace('/run/secrets/metrics_token', tokenFile),
    )
    try {
      const result = runCommand(PROMTOOL_BIN, ['check', 'config', config])
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`)
    } finally {
      rmSync(config, { force: true })
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
