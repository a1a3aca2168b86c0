// `npm run bench -- --quick` end to end: the bench starts its servers, PM2 and the load
// generator, writes well-formed results and leaves no process behind. Its figures are not
// checked: a quick run on a shared machine measures nothing, it only proves the bench works.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { BenchResults } from '../../bench/lib/report'
import { VARIANTS } from '../../bench/lib/variants'
import { ROOT } from '../helpers/pm2'

const run = promisify(execFile)

/** PIDs of processes whose command line or environment names one of the bench's own parts. */
function benchProcesses(): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8')
      if (
        /bench\/servers\/variant-server|bench\/lib\/load-generator/.test(cmdline) ||
        environ.includes(`PM2_HOME=${join(tmpdir(), 'pm2-bench-')}`)
      ) {
        found.push(Number(entry))
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found
}

const finitePositive = (value: number, what: string) =>
  assert.ok(Number.isFinite(value) && value > 0, `${what} should be a positive number: ${value}`)

test('a quick bench run writes well-formed results and leaves nothing running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quick-'))
  const out = join(dir, 'results.json')
  const before = new Set(benchProcesses())
  try {
    const env: Record<string, string | undefined> = { ...process.env }
    delete env.NODE_TEST_CONTEXT
    delete env.NODE_OPTIONS
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), '--quick', '--out', out],
      { cwd: ROOT, env, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
    )
    assert.match(stdout, /\| variant \| µs CPU \/ request \| ÷ bare \|/)
    assert.match(stdout, /\| target \| goal \| measured \| met \|/)

    const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults
    assert.equal(results.schema, 'bench-results/1')
    assert.equal(results.mode, 'quick')
    finitePositive(results.machine.cores, 'core count')
    assert.equal(results.machine.loadavgBefore.length, 3)
    for (const pkg of ['node', 'fastify', 'prom-client', 'fastify-metrics', 'autocannon', 'pm2']) {
      assert.match(results.versions[pkg] ?? '', /^\d+\.\d+\.\d+/, `version of ${pkg}`)
    }

    // CPU: every round ran every variant, in alternating order, ratios taken within the round.
    const { cpu } = results
    assert.equal(cpu.rounds.length, cpu.settings.rounds)
    cpu.rounds.forEach((round, r) => {
      assert.deepEqual(round.order, r % 2 === 0 ? [...VARIANTS] : [...VARIANTS].reverse())
      assert.equal(round.ratioToBare.bare, 1)
      for (const variant of VARIANTS) {
        const v = round.variants[variant]
        finitePositive(v.cpuMicrosPerRequest, `${variant} CPU per request`)
        finitePositive(v.responses, `${variant} responses`)
        finitePositive(v.latencyMs.p99, `${variant} p99 latency`)
        assert.ok(v.latencyMs.p50 <= v.latencyMs.p99)
        const expected = v.cpuMicrosPerRequest / round.variants.bare.cpuMicrosPerRequest
        assert.ok(Math.abs(round.ratioToBare[variant] - expected) < 1e-3, `${variant} ratio`)
      }
    })
    for (const variant of VARIANTS) {
      const s = cpu.summary[variant].ratioToBare
      assert.ok(s.min <= s.median && s.median <= s.max, `${variant} spread is ordered`)
    }

    assert.ok(results.saturation, 'saturation results')
    assert.deepEqual(results.saturation.pinned, { serverCpu: '0', loadGeneratorCpu: '1' })
    for (const variant of VARIANTS) {
      finitePositive(results.saturation.summary[variant].rps.median, `${variant} saturation`)
    }

    // Cluster view: every worker's pre-populated series came back through the gather.
    const { cluster } = results
    assert.ok(cluster, 'cluster results')
    const n = cluster.settings.instances
    const [on, off, large] = cluster.scenarios
    assert.deepEqual(
      cluster.scenarios.map((s) => [s.name, s.metricsCluster]),
      [
        ['realistic', true],
        ['realistic, cluster view off', false],
        ['large', true],
      ],
    )
    for (const scenario of [on, large]) {
      assert.ok(scenario.idle && scenario.underLoad, `${scenario.name} gather phases`)
      assert.ok(scenario.idle.gatherMs, `${scenario.name} reports its gather time`)
      assert.ok(scenario.idle.complete > 0, `${scenario.name}: some gather answered by all`)
      finitePositive(scenario.underLoad.scrapes, `${scenario.name} scrapes under load`)
    }
    const httpSeries = (s: { routes: number; statusCodes: number }) => s.routes * s.statusCodes * 16
    assert.ok(on.idle && large.idle)
    assert.ok(on.idle.seriesPerWorker.median >= httpSeries(on.registry))
    assert.ok(large.idle.seriesPerWorker.median >= httpSeries(large.registry))
    assert.ok(large.idle.seriesPerWorker.median >= 4_800, 'about 5,000 series per worker')
    assert.ok(on.idle.series.median >= n * httpSeries(on.registry), 'every worker in the scrape')
    assert.equal(off.idle, null)
    assert.equal(off.memory.scrapes.gatherMs, null, 'no gather with the cluster view off')
    for (const scenario of cluster.scenarios) {
      assert.equal(scenario.memory.rssMiBAfterLoad.length, n)
      for (const mib of scenario.memory.rssMiBAfterLoad) finitePositive(mib, 'worker RSS')
    }
    assert.ok(Number.isFinite(cluster.memory.addedMiBPerWorker))

    assert.ok(results.targets.length >= 5)
    for (const target of results.targets) assert.equal(typeof target.met, 'boolean')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const left = benchProcesses().filter((pid) => !before.has(pid))
  assert.deepEqual(left, [], 'processes left behind by the bench')
})
