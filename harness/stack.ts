// Shared by the stack tests and scripts/render-worker-chart.ts: the project's own stack files,
// read and adapted for a loopback run, the dashboard's queries with Grafana's variables
// substituted, and a bounded route mix for load.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { ROOT } from './pm2'
import { toolPath } from './tools'

export { ROOT }
export const PROMETHEUS_DIR = join(ROOT, 'prometheus')
export const PROMETHEUS_CONFIG = join(PROMETHEUS_DIR, 'prometheus.yml')
export const DASHBOARD_JSON = join(ROOT, 'grafana', 'dashboards', 'webapp-workers.json')
export const IMPORT_JSON = join(ROOT, 'grafana', 'import', 'webapp-workers.json')
export const PROMTOOL_BIN = toolPath('promtool')

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command to completion (no shell), whatever its exit code. */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): RunResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    input: options.input,
    encoding: 'utf8',
    timeout: 120_000,
  })
  if (result.error) throw result.error
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr }
}

/** YAML to plain data. */
export function parseYaml<T = unknown>(text: string): T {
  return parse(text) as T
}

export const readYaml = <T = unknown>(path: string): T => parseYaml<T>(readFileSync(path, 'utf8'))

/** The block of prometheus.yml that discovers the compose service's containers by DNS. */
export const DNS_DISCOVERY_BLOCK = `    dns_sd_configs:
      - names: ['webapp']
        type: A
        port: 9464
        refresh_interval: 15s
`

/**
 * The project's prometheus.yml with only two changes for a loopback run: the webapp job scrapes
 * `target` (an address, or the targets of a file_sd file, for a Prometheus started before the
 * app's port is known) instead of discovering `webapp` by DNS, and the rules are read from
 * `rulesDir` (the repository's by default; a relative path is read beside the config).
 */
export function loopbackPrometheusConfig(
  target: string | { file: string },
  rulesDir = join(PROMETHEUS_DIR, 'rules'),
): string {
  const config = readFileSync(PROMETHEUS_CONFIG, 'utf8')
  if (!config.includes(DNS_DISCOVERY_BLOCK)) {
    throw new Error('prometheus.yml no longer holds the expected dns_sd_configs block')
  }
  if (!config.includes('  - rules/*.yml\n')) {
    throw new Error('prometheus.yml no longer loads rules/*.yml')
  }
  return config
    .replace(DNS_DISCOVERY_BLOCK, discoveryBlock(target))
    .replace('  - rules/*.yml\n', `  - ${rulesDir}/*.yml\n`)
}

/** A scrape job's target list: one static address, or a file_sd file. */
export function discoveryBlock(target: string | { file: string }): string {
  return typeof target === 'string'
    ? `    static_configs:\n      - targets: ['${target}']\n`
    : `    file_sd_configs:\n      - files: ['${target.file}']\n`
}

/** Writes a file_sd file, renamed into place so discovery never reads half of it. */
export function writeTargets(
  path: string,
  groups: Array<{ targets: string[]; labels?: Record<string, string> }>,
): void {
  writeFileSync(`${path}.new`, JSON.stringify(groups))
  renameSync(`${path}.new`, path)
}

/**
 * `config` with every scrape, scrape timeout and rule evaluation interval set to `seconds`, so
 * a test waits seconds for what the shipped intervals make take minutes. Fails if the config
 * names none of them.
 */
export function withIntervals(config: string, seconds: number): string {
  const pattern = /^(\s*(?:scrape_interval|scrape_timeout|evaluation_interval)): \d+[smh]$/gm
  if (!pattern.test(config)) throw new Error('the config sets no interval to shorten')
  return config.replace(pattern, `$1: ${seconds}s`)
}

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; for?: string }> }>
}

/**
 * The project's rule files, keyed `rules/<file>` for startPrometheus, with the `for` of each
 * alert named in `holdFor` replaced (e.g. `0s`, so a test sees it fire without waiting out the
 * shipped hold); expressions, labels and annotations stay as shipped. Fails on an unknown alert.
 */
export function projectRules(holdFor: Record<string, string> = {}): Record<string, string> {
  const dir = join(PROMETHEUS_DIR, 'rules')
  const files: Record<string, string> = {}
  const changed = new Set<string>()
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
    const text = readFileSync(join(dir, name), 'utf8')
    const rules = parseYaml<RuleFile>(text)
    let edited = false
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      const hold = rule.alert === undefined ? undefined : holdFor[rule.alert]
      if (rule.alert === undefined || hold === undefined) continue
      if (rule.for === undefined) throw new Error(`${rule.alert} has no for to replace`)
      rule.for = hold
      changed.add(rule.alert)
      edited = true
    }
    files[`rules/${name}`] = edited ? stringify(rules) : text
  }
  const missing = Object.keys(holdFor).filter((alert) => !changed.has(alert))
  if (missing.length > 0) throw new Error(`no alert named ${missing.join(', ')}`)
  return files
}

// ---- the dashboard's queries ----

export interface DashboardTarget {
  refId: string
  expr: string
  legendFormat?: string
  instant?: boolean
  range?: boolean
  datasource?: { type?: string; uid?: string }
}

export interface DashboardPanel {
  id?: number
  type: string
  title: string
  datasource?: { type?: string; uid?: string }
  targets?: DashboardTarget[]
  panels?: DashboardPanel[]
}

export interface DashboardVariable {
  type: string
  name: string
  query: string
  current?: { text?: string; value?: string }
  allValue?: string
  includeAll?: boolean
  multi?: boolean
  datasource?: { type?: string; uid?: string }
}

export interface DashboardAnnotation {
  name: string
  enable: boolean
  builtIn?: number
  expr?: string
  titleFormat?: string
  tagKeys?: string
  datasource?: { type?: string; uid?: string }
}

export interface Dashboard {
  uid: string
  title: string
  schemaVersion: number
  panels: DashboardPanel[]
  templating: { list: DashboardVariable[] }
  annotations: { list: DashboardAnnotation[] }
}

export const readDashboard = (path = DASHBOARD_JSON): Dashboard =>
  JSON.parse(readFileSync(path, 'utf8')) as Dashboard

/** The variables whose values come from Prometheus (`label_values` queries). */
export const queryVariables = (dashboard: Dashboard) =>
  dashboard.templating.list.filter((v) => v.type === 'query')

/** Every PromQL expression: variable queries, panel queries and annotation queries. */
export function allExprs(dashboard: Dashboard): Array<{ where: string; expr: string }> {
  return [
    ...queryVariables(dashboard).map((v) => ({ where: `variable ${v.name}`, expr: v.query })),
    ...allPanels(dashboard).flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `"${p.title}" ${t.refId}`, expr: t.expr })),
    ),
    ...dashboard.annotations.list
      .filter((a) => a.expr !== undefined)
      .map((a) => ({ where: `annotation ${a.name}`, expr: a.expr as string })),
  ]
}

/** Every panel, rows' children included, in dashboard order. */
export function allPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])])
}

/** Grafana's built-in variables that the dashboard may use. */
export const BUILTIN_VARIABLES = ['__rate_interval', '__interval', '__range', '__range_s']

export interface Substitution {
  /** Variable name to its value as Grafana would render it into PromQL (`.*` for All). */
  variables: Record<string, string>
  /** `$__rate_interval`: max($__interval + scrape interval, 4 x scrape interval). */
  rateInterval: string
  /** `$__range`: the dashboard's time range. */
  range: string
  /** `$__interval`: the step of a range query. */
  interval?: string
}

/** The query Grafana would send, with its variables replaced. */
export function substitute(expr: string, sub: Substitution): string {
  return expr.replace(/\$(\w+)/g, (whole, name: string) => {
    if (name === '__rate_interval') return sub.rateInterval
    if (name === '__range') return sub.range
    if (name === '__interval' && sub.interval !== undefined) return sub.interval
    const value = sub.variables[name]
    if (value === undefined) throw new Error(`no value for ${whole} in ${expr}`)
    return value
  })
}

/** Variables named in an expression, `$name` form. */
export const variablesIn = (expr: string) => [...expr.matchAll(/\$(\w+)/g)].map((m) => m[1])

/** `label_values(selector, label)` → its parts, as Grafana's Prometheus datasource reads them. */
export function parseLabelValues(query: string): { selector: string; label: string } {
  const match = /^label_values\((.+),\s*(\w+)\)$/.exec(query.trim())
  if (!match) throw new Error(`not a label_values() query: ${query}`)
  return { selector: match[1], label: match[2] }
}

// The route mix and its load live in harness/load.ts.
export { driveRouteMix, ROUTE_MIX, startRouteMix } from './load'
