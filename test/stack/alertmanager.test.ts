// alertmanager/: amtool checks the config, and a real chain delivers an alert: a real Prometheus
// with the project's prometheus.yml and rules scrapes a webapp target that does not answer, its
// WebappTargetDown fires, and the real Alertmanager (Debian's prometheus-alertmanager) routes it
// with the project's config to the receiver, a webhook this test serves. The chain runs on
// shortened timings (1 s intervals, no `for` hold, no group_wait): what is shipped decides what
// fires and where it goes, the timings only how long the test waits.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { freePort, httpGet, waitFor } from '../../harness/net'
import { killAll } from '../../harness/pm2'
import { startPrometheus } from '../../harness/prometheus'
import {
  loopbackPrometheusConfig,
  projectRules,
  ROOT,
  readYaml,
  runCommand,
  withIntervals,
} from '../../harness/stack'
import { toolPath } from '../../harness/tools'

const CONFIG = join(ROOT, 'alertmanager', 'alertmanager.yml')
const ALERTMANAGER_BIN = toolPath('prometheus-alertmanager')
const AMTOOL_BIN = toolPath('amtool')
const PLACEHOLDER_URL = 'http://alert-receiver.invalid:9095/alerts'

interface Webhook {
  receiver: string
  status: string
  groupLabels: Record<string, string>
  alerts: Array<{ status: string; labels: Record<string, string> }>
}

test('amtool check-config accepts the config, and refuses one whose route names no receiver', () => {
  const ok = runCommand(AMTOOL_BIN, ['check-config', CONFIG])
  assert.equal(ok.code, 0, ok.stderr + ok.stdout)
  assert.match(ok.stdout, /SUCCESS/)

  const dir = mkdtempSync(join(tmpdir(), 'amtool-'))
  try {
    const broken = join(dir, 'alertmanager.yml')
    writeFileSync(
      broken,
      readFileSync(CONFIG, 'utf8').replace('- name: webapp-oncall', '- name: x'),
    )
    const result = runCommand(AMTOOL_BIN, ['check-config', broken])
    assert.notEqual(result.code, 0)
    assert.match(result.stdout + result.stderr, /webapp-oncall/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the receiver is the placeholder a user replaces, with resolved notifications', () => {
  const config = readYaml<{
    route: { receiver: string }
    receivers: Array<{
      name: string
      webhook_configs?: Array<{ url: string; send_resolved?: boolean }>
    }>
  }>(CONFIG)
  const receiver = config.receivers.find((r) => r.name === config.route.receiver)
  assert.deepEqual(
    receiver?.webhook_configs?.map((w) => w.url),
    [PLACEHOLDER_URL],
  )
  assert.equal(receiver?.webhook_configs?.[0].send_resolved, true)
})

interface AlertmanagerConfig {
  route: { receiver: string; group_wait?: string; routes?: Array<{ group_wait?: string }> }
  receivers: Array<{ name: string; webhook_configs?: Array<{ url: string }> }>
}

/**
 * The project's config for a test run: the placeholder receiver pointed at `hookUrl`, and every
 * route's group_wait at 0 s so the first notification leaves at once. Routes, grouping,
 * receivers and inhibitions stay as shipped.
 */
function testCopy(hookUrl: string): string {
  const config = readYaml<AlertmanagerConfig>(CONFIG)
  const webhooks = config.receivers.flatMap((r) => r.webhook_configs ?? [])
  assert.deepEqual(
    webhooks.map((w) => w.url),
    [PLACEHOLDER_URL],
  )
  webhooks[0].url = hookUrl
  for (const route of [config.route, ...(config.route.routes ?? [])]) {
    assert.ok(route.group_wait, 'every route sets its group_wait')
    route.group_wait = '0s'
  }
  return stringify(config)
}

test("a firing rule of the project's reaches the receiver through the real Alertmanager", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'alertmanager-test-'))
  const received: Webhook[] = []
  const webhook = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString()
    })
    req.on('end', () => {
      received.push(JSON.parse(body) as Webhook)
      res.end()
    })
  })
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve))
  const hookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/alerts`

  const configFile = join(dir, 'alertmanager.yml')
  writeFileSync(configFile, testCopy(hookUrl))
  const check = runCommand(AMTOOL_BIN, ['check-config', configFile])
  assert.equal(check.code, 0, check.stderr + check.stdout)
  const amPort = await freePort()
  const alertmanager = spawn(
    ALERTMANAGER_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${amPort}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  let prometheus: Awaited<ReturnType<typeof startPrometheus>> | undefined
  try {
    // Ready before Prometheus starts: an alert it fails to send waits a minute to be resent.
    await waitFor(
      'Alertmanager to be ready',
      async () => (await httpGet(`http://127.0.0.1:${amPort}/-/ready`)).status === 200,
    )
    // A webapp target on a port nobody listens on, scraped and evaluated every second, under
    // the project's rules with WebappTargetDown's `for` at 0 s: it fires at the first failed
    // scrape, with the project's expression and labels.
    const deadTarget = `127.0.0.1:${await freePort()}`
    const promConfig = loopbackPrometheusConfig(deadTarget, 'rules')
    assert.ok(promConfig.includes("- targets: ['alertmanager:9093']"))
    prometheus = await startPrometheus(
      withIntervals(
        promConfig.replace(
          "- targets: ['alertmanager:9093']",
          `- targets: ['127.0.0.1:${amPort}']`,
        ),
        1,
      ),
      projectRules({ WebappTargetDown: '0s' }),
    )

    const delivered = await waitFor(
      'WebappTargetDown to reach the webhook',
      async () =>
        received.find((hook) => hook.alerts.some((a) => a.labels.alertname === 'WebappTargetDown')),
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    assert.equal(delivered.receiver, 'webapp-oncall')
    assert.equal(delivered.status, 'firing')
    // Grouped as the route says: per alert and instance.
    assert.deepEqual(delivered.groupLabels, {
      alertname: 'WebappTargetDown',
      instance: deadTarget,
    })
    assert.equal(delivered.alerts[0].labels.severity, 'critical')
  } finally {
    await prometheus?.stop()
    if (alertmanager.pid !== undefined) await killAll([alertmanager.pid])
    await new Promise<void>((resolve) => webhook.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  }
})
