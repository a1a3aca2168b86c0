// The built app in process, /metrics behind a token read from a file, scraped by a real
// Prometheus (Debian's, or PROMETHEUS_BIN) with `credentials_file`: up with it, 401 without.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { startPrometheus } from '../../harness/prometheus'
import { build, listenOnLoopback } from '../helper'

const dir = mkdtempSync(join(tmpdir(), 'metrics-token-scrape-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const token = randomBytes(24).toString('base64url')
const tokenFile = join(dir, 'metrics-token')
// A trailing newline, as `echo token > file` writes it.
writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })

test('a real Prometheus scrapes through the token with credentials_file, and fails without', {
  timeout: 60_000,
}, async (t) => {
  const app = await build(t, { METRICS_TOKEN_FILE: tokenFile })
  const { port } = await listenOnLoopback(app)
  const target = `127.0.0.1:${port}`
  const prometheus = await startPrometheus(
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: with-token',
      '    authorization:',
      '      type: Bearer',
      `      credentials_file: ${tokenFile}`,
      `    static_configs: [{ targets: ['${target}'] }]`,
      '  - job_name: without-token',
      `    static_configs: [{ targets: ['${target}'] }]`,
      '',
    ].join('\n'),
  )
  t.after(() => prometheus.stop())
  const targets = await waitFor('both jobs scraped', async () => {
    const all = await prometheus.targets()
    return all.length === 2 && all.every((x) => x.health !== 'unknown') ? all : undefined
  })
  const byJob = new Map(targets.map((x) => [x.labels.job, x]))
  assert.equal(byJob.get('with-token')?.health, 'up')
  assert.equal(byJob.get('without-token')?.health, 'down')
  assert.match(byJob.get('without-token')?.lastError ?? '', /401/)
  const stored = await waitFor('a stored sample through the token', async () => {
    const result = await prometheus.query('process_start_time_seconds{job="with-token"}')
    return result.length > 0 ? result : undefined
  })
  assert.equal(stored[0].metric.worker_id, '0')
})
