// prometheus/: promtool checks the config and rules and runs the rule unit tests; the rules
// follow the naming and annotation conventions; and the unit tests catch a broken threshold.
import assert from 'node:assert/strict'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import {
  PROMETHEUS_CONFIG,
  PROMETHEUS_DIR,
  PROMTOOL_BIN,
  ROOT,
  readYaml,
  runCommand,
} from '../../harness/stack'

interface Rule {
  record?: string
  alert?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>
}

const RULES_DIR = join(PROMETHEUS_DIR, 'rules')
const TESTS_DIR = join(PROMETHEUS_DIR, 'tests')
const ruleFiles = () =>
  readdirSync(RULES_DIR)
    .filter((name) => name.endsWith('.yml'))
    .map((name) => join(RULES_DIR, name))
const testFiles = () =>
  readdirSync(TESTS_DIR)
    .filter((name) => name.endsWith('.test.yml'))
    .map((name) => join(TESTS_DIR, name))
const rules = () =>
  ruleFiles().flatMap((file) => readYaml<RuleFile>(file).groups.flatMap((g) => g.rules))

const promtool = (...args: string[]) => {
  const result = runCommand(PROMTOOL_BIN, args)
  return { ...result, output: `${result.stdout}${result.stderr}` }
}

test('promtool check config accepts prometheus.yml and finds the rule files', () => {
  const result = promtool('check', 'config', PROMETHEUS_CONFIG)
  assert.equal(result.code, 0, result.output)
  assert.match(result.output, new RegExp(`SUCCESS: ${ruleFiles().length} rule files found`))
})

test('promtool check rules accepts every rule file', () => {
  const result = promtool('check', 'rules', ...ruleFiles())
  assert.equal(result.code, 0, result.output)
})

test('promtool test rules passes the unit tests', () => {
  const result = promtool('test', 'rules', ...testFiles())
  assert.equal(result.code, 0, result.output)
  assert.match(result.output, /SUCCESS/)
})

test('the scrape config: 5 s default interval, the service found by DNS, itself scraped', () => {
  const config = readYaml<{
    global: { scrape_interval: string; scrape_timeout: string }
    rule_files: string[]
    scrape_configs: Array<{
      job_name: string
      static_configs?: Array<{ targets: string[] }>
      dns_sd_configs?: Array<{ names: string[]; type: string; port: number }>
    }>
  }>(PROMETHEUS_CONFIG)
  assert.equal(config.global.scrape_interval, '5s')
  assert.deepEqual(config.rule_files, ['rules/*.yml'])
  const jobs = Object.fromEntries(config.scrape_configs.map((job) => [job.job_name, job]))
  assert.deepEqual(jobs.prometheus.static_configs, [{ targets: ['localhost:9090'] }])
  assert.deepEqual(jobs.webapp.dns_sd_configs?.[0], {
    names: ['webapp'],
    type: 'A',
    port: 9464,
    refresh_interval: '15s',
  })
})

test('recording rules are named level:metric:operations', () => {
  const recorded = rules().filter((rule) => rule.record !== undefined)
  assert.ok(recorded.length >= 10)
  for (const rule of recorded) {
    assert.match(rule.record as string, /^[a-z_]+:[a-z_]+:[a-z0-9_]+$/, rule.record)
    const level = (rule.record as string).split(':')[0]
    // A constant set by hand (the expected replica count) carries its job as a label.
    if (/^vector\(\d+\)$/.test(rule.expr.trim())) {
      assert.equal(level, 'job', rule.record)
      assert.equal(rule.labels?.job, 'webapp', rule.record)
      continue
    }
    // The level names the labels kept: job always, instance and worker_id where per worker.
    // (directly, or through a recorded series of the same level).
    if (level === 'instance_worker') {
      assert.match(rule.expr, /by \(job, instance, worker_id|instance_worker:/, rule.record)
    } else {
      assert.equal(level, 'job', rule.record)
      assert.match(rule.expr, /by \(job[,)]|job:/, rule.record)
    }
  }
})

test('every alert has a for, a severity, a summary and a description', () => {
  const alerts = rules().filter((rule) => rule.alert !== undefined)
  assert.deepEqual(alerts.map((a) => a.alert).sort(), [
    'WebappClusterViewMissing',
    'WebappEventLoopLag',
    'WebappGatherNearDeadline',
    'WebappHighErrorRatio',
    'WebappHighLatencyP99',
    'WebappNoTargets',
    'WebappReplicasBelowExpected',
    'WebappTargetDown',
    'WebappWorkerFlapping',
    'WebappWorkerMissingFromClusterView',
    'WebappWorkerRestarting',
  ])
  // Each runbook_url is a section of docs/runbook.md that exists (GitHub's heading anchors).
  const runbook = readFileSync(join(ROOT, 'docs', 'runbook.md'), 'utf8')
  const anchors = new Set(
    [...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((m) =>
      m[1]
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    ),
  )
  for (const alert of alerts) {
    assert.match(alert.for ?? '', /^\d+[smh]$/, `${alert.alert} has no for`)
    assert.ok(['warning', 'critical'].includes(alert.labels?.severity ?? ''), alert.alert)
    assert.ok((alert.annotations?.summary ?? '').length > 10, `${alert.alert} summary`)
    assert.ok((alert.annotations?.description ?? '').length > 80, `${alert.alert} description`)
    const url = alert.annotations?.runbook_url ?? ''
    assert.match(url, /^docs\/runbook\.md#/, `${alert.alert} runbook_url`)
    assert.ok(anchors.has(url.split('#')[1]), `${url}: no such section in docs/runbook.md`)
  }
})

test('each alert is shown both firing and quiet by the unit tests', () => {
  const tests = testFiles().flatMap(
    (file) =>
      readYaml<{
        tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>
      }>(file).tests,
  )
  const cases = tests.flatMap((t) => t.alert_rule_test ?? [])
  for (const alert of rules().filter((rule) => rule.alert !== undefined)) {
    const mine = cases.filter((c) => c.alertname === alert.alert)
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert.alert} is never tested firing`,
    )
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert.alert} is never tested quiet`,
    )
  }
})

test('the unit tests fail when an alert threshold or the traffic floor is broken', () => {
  const mutations: Array<[string, string, string]> = [
    ['ratio_rate5m{job="webapp"} > 0.05', 'ratio_rate5m{job="webapp"} > 0.5', 'threshold'],
    [
      'job:http_requests:rate5m{job="webapp"} > 0.1',
      'job:http_requests:rate5m{job="webapp"} > 0',
      'floor',
    ],
  ]
  for (const [from, to, what] of mutations) {
    const dir = mkdtempSync(join(tmpdir(), 'prom-rules-'))
    try {
      cpSync(PROMETHEUS_DIR, dir, { recursive: true })
      const alertsFile = join(dir, 'rules', 'webapp-alerts.yml')
      const original = readFileSync(alertsFile, 'utf8')
      const broken = original.replace(from, to)
      assert.notEqual(broken, original, `the ${what} to break was not found`)
      writeFileSync(alertsFile, broken)
      const result = runCommand(PROMTOOL_BIN, [
        'test',
        'rules',
        join(dir, 'tests', 'webapp-rules.test.yml'),
      ])
      assert.notEqual(result.code, 0, `promtool passed with the ${what} broken`)
      assert.match(`${result.stdout}${result.stderr}`, /WebappHighErrorRatio/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
})
