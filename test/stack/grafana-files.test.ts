// grafana/: the committed dashboard JSON (provisioned and import-ready) is what the typed source
// generates; it fits the provisioning (datasource uid, scrape interval, provider path), and it
// is portable: datasource and job are variables that every query and variable goes through.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { DASHBOARD_UID, dashboardJson } from '../../grafana/src/dashboard'
import { DASHBOARD_FILE, IMPORT_FILE } from '../../grafana/src/generate'
import { importableDashboardJson } from '../../grafana/src/importable'
import {
  allExprs,
  allPanels,
  BUILTIN_VARIABLES,
  DASHBOARD_JSON,
  IMPORT_JSON,
  PROMETHEUS_CONFIG,
  parseLabelValues,
  queryVariables,
  ROOT,
  readDashboard,
  readYaml,
  variablesIn,
} from '../../harness/stack'

const PROVISIONING = join(ROOT, 'grafana', 'provisioning')
// Grafana's placeholders, written as plain strings on purpose.
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
const DATASOURCE_REF = { type: 'prometheus', uid: '${datasource}' }
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's import placeholder
const DS_INPUT = '${DS_PROMETHEUS}'

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
interface FieldDefaults {
  unit?: string
  thresholds?: { mode: string; steps: Array<{ value: number | null; color: string }> }
}

const datasource = () =>
  readYaml<DatasourceFile>(join(PROVISIONING, 'datasources', 'prometheus.yaml')).datasources[0]

test('the committed dashboard JSON files are what grafana/src generates', () => {
  assert.equal(DASHBOARD_FILE, DASHBOARD_JSON)
  assert.equal(IMPORT_FILE, IMPORT_JSON)
  assert.equal(
    readFileSync(DASHBOARD_JSON, 'utf8'),
    dashboardJson(),
    'grafana/dashboards/webapp-workers.json is stale: run `npm run dashboard`',
  )
  assert.equal(
    readFileSync(IMPORT_JSON, 'utf8'),
    importableDashboardJson(),
    'grafana/import/webapp-workers.json is stale: run `npm run dashboard`',
  )
})

test('the dashboard has a stable uid, the current schema and the variables in import order', () => {
  const dashboard = readDashboard()
  assert.equal(dashboard.uid, DASHBOARD_UID)
  // schemaVersion 41 is Grafana 11.6's, what the SDK writes; older numbers trigger a migration on
  // load, as Grafana 12 (compose) does if its own number is higher.
  assert.ok(dashboard.schemaVersion >= 41, `schemaVersion ${dashboard.schemaVersion}`)
  const variables = dashboard.templating.list
  assert.deepEqual(
    variables.map((v) => [v.name, v.type]),
    [
      ['datasource', 'datasource'],
      ['job', 'query'],
      ['instance', 'query'],
      ['worker', 'query'],
      ['route', 'query'],
    ],
  )
  assert.equal(variables[0].query, 'prometheus', 'the datasource picker offers Prometheus only')
  // The job variable lists jobs from a metric only this service's targets expose.
  assert.equal(variables[1].query, 'label_values(cluster_metrics_workers_expected, job)')
  assert.equal(variables[1].includeAll, false, 'one job at a time')
  for (const variable of variables.slice(2)) {
    assert.equal(variable.allValue, '.*', `${variable.name}: All must match every value`)
    assert.equal(variable.includeAll, true)
    assert.doesNotThrow(() => parseLabelValues(variable.query))
  }
})

test('every panel, query, variable and annotation reads the datasource variable', () => {
  const dashboard = readDashboard()
  for (const variable of queryVariables(dashboard)) {
    assert.deepEqual(variable.datasource, DATASOURCE_REF, variable.name)
  }
  for (const panel of allPanels(dashboard)) {
    if (panel.type === 'row') continue
    assert.deepEqual(panel.datasource, DATASOURCE_REF, panel.title)
    assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`)
    for (const target of panel.targets ?? []) {
      assert.deepEqual(target.datasource, DATASOURCE_REF, `${panel.title} ${target.refId}`)
    }
  }
  for (const annotation of dashboard.annotations.list.filter((a) => a.builtIn !== 1)) {
    assert.deepEqual(annotation.datasource, DATASOURCE_REF, annotation.name)
  }
})

test('the provisioned dashboard starts on the provisioned datasource', () => {
  const { uid, name, type } = datasource()
  assert.equal(type, 'prometheus')
  const variable = readDashboard().templating.list.find((v) => v.name === 'datasource')
  assert.equal(variable?.current?.value, uid)
  assert.equal(variable?.current?.text, name)
})

test('every selector is narrowed to $job; no query needs the project’s recording rules', () => {
  const dashboard = readDashboard()
  const exprs = allExprs(dashboard)
  assert.ok(exprs.length >= 25, `only ${exprs.length} expressions`)
  for (const { where, expr } of exprs) {
    if (where === 'variable job') continue
    const selectors = [...expr.matchAll(/\w+\{([^}]*)\}/g)]
    assert.ok(selectors.length > 0, `${where}: no label selector in ${expr}`)
    for (const [selector, matchers] of selectors) {
      assert.ok(matchers.split(',')[0].trim() === 'job=~"$job"', `${where}: ${selector}`)
    }
    // A metric name with a colon is a recording rule, which another Prometheus will not have.
    for (const name of expr.matchAll(/([A-Za-z_:][\w:]*)\{/g)) {
      assert.ok(!name[1].includes(':'), `${where} reads the recording rule ${name[1]}`)
    }
  }
})

test('every variable a query uses is defined or built in; rates use $__rate_interval', () => {
  const dashboard = readDashboard()
  const defined = new Set([...dashboard.templating.list.map((v) => v.name), ...BUILTIN_VARIABLES])
  for (const { where, expr } of allExprs(dashboard)) {
    for (const name of variablesIn(expr)) assert.ok(defined.has(name), `$${name} in ${where}`)
    // Counters go through rate()/changes() over $__rate_interval or $__range, never a fixed window.
    for (const match of expr.matchAll(/(?:rate|changes)\([^[]+\[([^\]]+)\]/g)) {
      assert.ok(['$__rate_interval', '$__range'].includes(match[1]), `${where}: ${expr}`)
    }
  }
})

test('every panel has a unit and absolute thresholds; bad values are coloured', () => {
  const dashboard = readDashboard()
  const panels = allPanels(dashboard).filter((p) => p.type !== 'row')
  const defaults = (title: string) => {
    const raw = JSON.parse(readFileSync(DASHBOARD_JSON, 'utf8')) as {
      panels: Array<{ title: string; fieldConfig?: { defaults: FieldDefaults } }>
    }
    return raw.panels.find((p) => p.title === title)?.fieldConfig?.defaults ?? {}
  }
  for (const panel of panels) {
    const { unit, thresholds } = defaults(panel.title)
    assert.ok(unit, `${panel.title} has no unit`)
    assert.equal(thresholds?.mode, 'absolute', `${panel.title} thresholds`)
    assert.equal(thresholds?.steps[0].value, null, `${panel.title}: thresholds need a base step`)
  }
  // Where a value can be bad, a step beyond the base colours it.
  const red = (title: string) =>
    defaults(title)
      .thresholds?.steps.filter((s) => s.color === 'red')
      .map((s) => s.value)
  assert.deepEqual(red('5xx ratio'), [0.05])
  assert.deepEqual(red('p99 latency'), [1])
  assert.deepEqual(red('Worker restarts'), [3])
  assert.deepEqual(red('Workers answering / expected'), [null], '0 workers is bad')
  // Red where PM2 restarts the worker: the ecosystem file's max_memory_restart.
  const restartAt = (
    require(join(ROOT, 'ecosystem.config.js')) as { apps: Array<{ max_memory_restart: string }> }
  ).apps[0].max_memory_restart
  const megabytes = Number(/^(\d+)M$/.exec(restartAt)?.[1])
  assert.deepEqual(red('Memory per worker'), [megabytes * 1024 * 1024], 'PM2 max_memory_restart')
})

test('restarts and reloads are annotations from process_start_time_seconds', () => {
  const dashboard = readDashboard()
  const restarts = dashboard.annotations.list.filter((a) => a.builtIn !== 1)
  assert.equal(restarts.length, 1)
  const [annotation] = restarts
  assert.equal(annotation.enable, true)
  assert.match(
    annotation.expr ?? '',
    /^process_start_time_seconds\{.*\} > max_over_time\(process_start_time_seconds\{/,
  )
  assert.match(annotation.titleFormat ?? '', /\{\{worker_id\}\}/)
  assert.deepEqual(annotation.tagKeys?.split(','), ['instance', 'worker_id'])
})

test('the import variant asks for a Prometheus and is otherwise the provisioned dashboard', () => {
  const text = readFileSync(IMPORT_JSON, 'utf8')
  const imported = JSON.parse(text) as Record<string, unknown> & {
    __inputs: Array<{ name: string; type: string; pluginId: string }>
    __requires: Array<{ type: string; id: string; version: string }>
  }
  assert.deepEqual(
    imported.__inputs.map((i) => [i.name, i.type, i.pluginId]),
    [['DS_PROMETHEUS', 'datasource', 'prometheus']],
  )
  // Every ${...} placeholder Grafana's import replaces names an input; ${datasource} is the
  // dashboard's own variable, left for Grafana to resolve.
  const placeholders = new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))
  assert.deepEqual([...placeholders].sort(), ['DS_PROMETHEUS', 'datasource'])
  const required = imported.__requires.map((r) => `${r.type}:${r.id}`)
  assert.ok(required.includes('grafana:grafana') && required.includes('datasource:prometheus'))
  const panelTypes = new Set(
    allPanels(readDashboard(IMPORT_JSON))
      .map((p) => p.type)
      .filter((t) => t !== 'row'),
  )
  for (const type of panelTypes) assert.ok(required.includes(`panel:${type}`), `panel ${type}`)

  // Apart from those, the same dashboard as the provisioned one.
  const { __inputs, __requires, ...rest } = imported
  const provisioned = JSON.parse(readFileSync(DASHBOARD_JSON, 'utf8')) as {
    templating: { list: DashboardVariableJson[] }
  }
  const importedTemplating = rest.templating as { list: DashboardVariableJson[] }
  assert.deepEqual(importedTemplating.list[0].current, {
    selected: true,
    text: DS_INPUT,
    value: DS_INPUT,
  })
  importedTemplating.list[0].current = provisioned.templating.list[0].current
  assert.deepEqual(rest, provisioned)
  // Provisioning loads every file of grafana/dashboards: the import file, with the same uid,
  // must live elsewhere.
  assert.ok(relative(join(DASHBOARD_JSON, '..'), IMPORT_JSON).startsWith('..'))
})

interface DashboardVariableJson {
  current?: unknown
}

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
