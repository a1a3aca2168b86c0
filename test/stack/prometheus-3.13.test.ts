// prometheus/prometheus.native-histograms-3.13.yml, the stack's config for Prometheus 3.13 LTS
// with native histograms (docs/stack.md): the tests run Prometheus 3.5, so they check it as far
// as 3.5 can: it is prometheus.yml but for the webapp job's native-histogram settings, and
// promtool 3.5 refuses only the option that 3.8 brought and accepts everything else.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import {
  PROMETHEUS_CONFIG,
  PROMETHEUS_DIR,
  PROMTOOL_BIN,
  readYaml,
  runCommand,
} from '../../harness/stack'

const CONFIG_3_13 = join(PROMETHEUS_DIR, 'prometheus.native-histograms-3.13.yml')
const ONLY_IN_3_8_AND_LATER = '    scrape_native_histograms: true\n'

interface Config {
  scrape_configs: Array<Record<string, unknown> & { job_name: string }>
}

const promtool = (...args: string[]) => {
  const result = runCommand(PROMTOOL_BIN, args)
  return { ...result, output: `${result.stdout}${result.stderr}` }
}

test('the 3.13 config is prometheus.yml with native histograms asked for in the webapp job', () => {
  const config = readYaml<Config>(CONFIG_3_13)
  const webapp = config.scrape_configs.find((job) => job.job_name === 'webapp')
  assert.ok(webapp, 'a webapp job')
  assert.equal(webapp.scrape_native_histograms, true)
  assert.deepEqual(webapp.scrape_protocols, [
    'PrometheusProto',
    'OpenMetricsText1.0.0',
    'PrometheusText0.0.4',
  ])
  assert.equal(webapp.always_scrape_classic_histograms, true)
  delete webapp.scrape_native_histograms
  delete webapp.scrape_protocols
  delete webapp.always_scrape_classic_histograms
  assert.deepEqual(config, readYaml<Config>(PROMETHEUS_CONFIG))
})

test('promtool 3.5 refuses only scrape_native_histograms and accepts the rest, rules included', (t) => {
  const version = promtool('--version')
  assert.match(version.output, /promtool, version 3\.5\./)
  const refused = promtool('check', 'config', CONFIG_3_13)
  assert.notEqual(refused.code, 0)
  assert.match(refused.output, /field scrape_native_histograms not found/)

  // The same file without that line, beside the rules it loads: what Prometheus 3.5 runs with
  // --enable-feature=native-histograms.
  const text = readFileSync(CONFIG_3_13, 'utf8')
  assert.ok(text.includes(ONLY_IN_3_8_AND_LATER))
  const dir = mkdtempSync(join(tmpdir(), 'prom-3.5-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  symlinkSync(join(PROMETHEUS_DIR, 'rules'), join(dir, 'rules'))
  const config35 = join(dir, 'prometheus.yml')
  writeFileSync(config35, text.replace(ONLY_IN_3_8_AND_LATER, ''))
  const accepted = promtool('check', 'config', config35)
  assert.equal(accepted.code, 0, accepted.output)
  const shipped = promtool('check', 'config', PROMETHEUS_CONFIG)
  const ruleFiles = /SUCCESS: (\d+) rule files found/.exec(shipped.output)?.[1]
  assert.ok(ruleFiles, shipped.output)
  assert.match(accepted.output, new RegExp(`SUCCESS: ${ruleFiles} rule files found`))
})
