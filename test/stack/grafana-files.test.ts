// grafana/: the committed dashboard JSON is what the typed source generates, and it fits the
// provisioning (datasource uid, scrape interval, provider path) and Grafana's conventions.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { DASHBOARD_UID, dashboardJson } from '../../grafana/src/dashboard'
import { DASHBOARD_FILE } from '../../grafana/src/generate'
import {
  allPanels,
  BUILTIN_VARIABLES,
  DASHBOARD_JSON,
  PROMETHEUS_CONFIG,
  parseLabelValues,
  ROOT,
  readDashboard,
  readYaml,
  variablesIn,
} from './stack'

const PROVISIONING = join(ROOT, 'grafana', 'provisioning')

interface DatasourceFile {
  apiVersion: number
  datasources: Array<{
    name: string
    uid: string
    type: string
    url: string
    isDefault?: boolean
    jsonData?: { timeInterval?: string }
  }>
}
interface ProviderFile {
  apiVersion: number
  providers: Array<{ type: string; folder?: string; options: { path: string } }>
}

const datasource = () =>
  readYaml<DatasourceFile>(join(PROVISIONING, 'datasources', 'prometheus.yaml')).datasources[0]

test('the committed dashboard JSON is what grafana/src/dashboard.ts generates', () => {
  assert.equal(DASHBOARD_FILE, DASHBOARD_JSON)
  assert.equal(
    readFileSync(DASHBOARD_JSON, 'utf8'),
    dashboardJson(),
    'grafana/dashboards/webapp-workers.json is stale: run `npm run dashboard`',
  )
})

test('the dashboard has a stable uid, the current schema and instance/worker/route variables', () => {
  const dashboard = readDashboard()
  assert.equal(dashboard.uid, DASHBOARD_UID)
  // Grafana 11.6 writes schemaVersion 41; older numbers trigger a migration on load.
  assert.ok(dashboard.schemaVersion >= 41, `schemaVersion ${dashboard.schemaVersion}`)
  const variables = dashboard.templating.list
  assert.deepEqual(
    variables.map((v) => v.name),
    ['instance', 'worker', 'route'],
  )
  for (const variable of variables) {
    assert.equal(variable.type, 'query')
    assert.equal(variable.allValue, '.*', `${variable.name}: All must match every value`)
    assert.equal(variable.includeAll, true)
    assert.doesNotThrow(() => parseLabelValues(variable.query))
  }
})

test('every panel and query uses the provisioned datasource by uid', () => {
  const { uid, type } = datasource()
  const dashboard = readDashboard()
  for (const variable of dashboard.templating.list) {
    assert.deepEqual(variable.datasource, { type, uid }, variable.name)
  }
  for (const panel of allPanels(dashboard)) {
    if (panel.type === 'row') continue
    assert.deepEqual(panel.datasource, { type, uid }, panel.title)
    assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`)
    for (const target of panel.targets ?? []) {
      assert.deepEqual(target.datasource, { type, uid }, `${panel.title} ${target.refId}`)
    }
  }
})

test('every variable a query uses is defined or built in', () => {
  const dashboard = readDashboard()
  const defined = new Set([...dashboard.templating.list.map((v) => v.name), ...BUILTIN_VARIABLES])
  const exprs = [
    ...dashboard.templating.list.map((v) => v.query),
    ...allPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ]
  for (const expr of exprs) {
    for (const name of variablesIn(expr)) assert.ok(defined.has(name), `$${name} in ${expr}`)
  }
  // Counters go through rate() over $__rate_interval, never a fixed window.
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      for (const match of target.expr.matchAll(/rate\([^[]+\[([^\]]+)\]/g)) {
        assert.equal(match[1], '$__rate_interval', `${panel.title}: ${target.expr}`)
      }
    }
  }
})

test('the datasource scrape interval equals Prometheus’ so $__rate_interval is right', () => {
  const config = readYaml<{ global: { scrape_interval: string } }>(PROMETHEUS_CONFIG)
  const ds = datasource()
  assert.equal(ds.type, 'prometheus')
  assert.equal(ds.url, 'http://prometheus:9090')
  assert.equal(ds.isDefault, true)
  assert.equal(ds.jsonData?.timeInterval, config.global.scrape_interval)
})

test('the dashboard provider reads files into their own folder', () => {
  const providers = readYaml<ProviderFile>(join(PROVISIONING, 'dashboards', 'webapp.yaml'))
  assert.equal(providers.apiVersion, 1)
  assert.equal(providers.providers.length, 1)
  const [provider] = providers.providers
  assert.equal(provider.type, 'file')
  assert.ok(provider.folder && provider.folder !== 'General', 'dashboards need their own folder')
  // docker-compose.yml mounts grafana/dashboards at this path (checked in containers.test.ts).
  assert.equal(provider.options.path, '/etc/grafana/dashboards')
})
