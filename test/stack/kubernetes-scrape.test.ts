// deploy/kubernetes/prometheus-scrape.yml under a real Prometheus, scraping the PM2 app (5
// workers) as Kubernetes pod discovery would present it. Debian's Prometheus is built without
// Kubernetes discovery, so the job's kubernetes_sd_configs block is swapped for a file of the
// target groups pod discovery yields (one per container port, with its __meta_kubernetes_pod_*
// labels), made from deployment.yaml's pod template. Everything else is the file as shipped.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'
import {
  PROMTOOL_BIN,
  readDashboard,
  runCommand,
  substitute,
  withIntervals,
  writeTargets,
} from '../../harness/stack'
import { readManifests, SCRAPE_CONFIG } from './kubernetes'

const POD_DISCOVERY = '    kubernetes_sd_configs:\n      - role: pod\n'
const JOB = 'kubernetes-pods'
const NAMESPACE = 'shop'

/** The shipped scrape config, its pod discovery read from `targetsFile`. */
function withDiscoveryFile(targetsFile: string): string {
  const config = readFileSync(SCRAPE_CONFIG, 'utf8')
  assert.ok(config.includes(POD_DISCOVERY), 'prometheus-scrape.yml discovers pods')
  return config.replace(POD_DISCOVERY, `    file_sd_configs:\n      - files: ['${targetsFile}']\n`)
}

interface TargetGroup {
  targets: string[]
  labels: Record<string, string>
}

/** Prometheus' label name for a Kubernetes label or annotation key. */
const metaName = (key: string) => key.replace(/[^A-Za-z0-9_]/g, '_')

/**
 * The target groups pod discovery yields for one pod: one target per container port at
 * podIP:port, labelled with the pod's labels, annotations, phase and the container's port.
 */
function podTargets(pod: {
  name: string
  ip: string
  phase: string
  labels: Record<string, string>
  annotations: Record<string, string>
  containers: Array<{ name: string; init?: boolean; ports: Array<{ name?: string; port: number }> }>
}): TargetGroup[] {
  const podLabels: Record<string, string> = {
    __meta_kubernetes_namespace: NAMESPACE,
    __meta_kubernetes_pod_name: pod.name,
    __meta_kubernetes_pod_ip: pod.ip,
    __meta_kubernetes_pod_phase: pod.phase,
    __meta_kubernetes_pod_ready: pod.phase === 'Running' ? 'true' : 'false',
  }
  for (const [k, v] of Object.entries(pod.labels)) {
    podLabels[`__meta_kubernetes_pod_label_${metaName(k)}`] = v
    podLabels[`__meta_kubernetes_pod_labelpresent_${metaName(k)}`] = 'true'
  }
  for (const [k, v] of Object.entries(pod.annotations)) {
    podLabels[`__meta_kubernetes_pod_annotation_${metaName(k)}`] = v
    podLabels[`__meta_kubernetes_pod_annotationpresent_${metaName(k)}`] = 'true'
  }
  return pod.containers.flatMap((c) =>
    c.ports.map((p) => ({
      targets: [`${pod.ip}:${p.port}`],
      labels: {
        ...podLabels,
        __meta_kubernetes_pod_container_name: c.name,
        __meta_kubernetes_pod_container_init: c.init ? 'true' : 'false',
        __meta_kubernetes_pod_container_port_name: p.name ?? '',
        __meta_kubernetes_pod_container_port_number: String(p.port),
        __meta_kubernetes_pod_container_port_protocol: 'TCP',
      },
    })),
  )
}

let app: Pm2App
let prom: PrometheusServer
let dir: string
const POD = 'webapp-7d9f8b6c5-x2k4q'

before(async () => {
  // Prometheus takes seconds to hand discovered targets to its scrapers: it starts while PM2
  // does, on an empty discovery file that gets the pods once the app's port is known.
  dir = mkdtempSync(join(tmpdir(), 'k8s-sd-'))
  const targetsFile = join(dir, 'pods.json')
  writeFileSync(targetsFile, '[]')
  // Scraped every second rather than every 5 s: the test only waits less for the first scrape.
  const [started, prometheus] = await Promise.allSettled([
    startPm2App({ instances: 5 }),
    startPrometheus(withIntervals(withDiscoveryFile(targetsFile), 1)),
  ])
  if (started.status === 'fulfilled') app = started.value
  if (prometheus.status === 'fulfilled') prom = prometheus.value
  if (started.status === 'rejected') throw started.reason
  if (prometheus.status === 'rejected') throw prometheus.reason
  const deployment = readManifests().find((m) => m.manifest.kind === 'Deployment')?.manifest
  assert.ok(deployment)
  const template = deployment.spec.template
  // The pod as deployment.yaml makes it, its port mapped to the test app's free port.
  const annotations = { ...template.metadata.annotations, 'prometheus.io/port': String(app.port) }
  const containers = template.spec.containers.map(
    (c: { name: string; ports: Array<{ name: string }> }) => ({
      name: c.name,
      ports: c.ports.map((p) => ({ name: p.name, port: app.port })),
    }),
  )
  const groups = [
    // The service's pod, plus a sidecar with a port of its own and an init container: still
    // one target, at the annotated port.
    ...podTargets({
      name: POD,
      ip: '127.0.0.1',
      phase: 'Running',
      labels: template.metadata.labels,
      annotations,
      containers: [
        ...containers,
        { name: 'sidecar', ports: [{ name: 'admin', port: 9 }] },
        { name: 'init', init: true, ports: [{ port: 7 }] },
      ],
    }),
    // A replica still starting, and a pod of something else that asks for no scrape.
    ...podTargets({
      name: 'webapp-7d9f8b6c5-pending',
      ip: '127.0.0.2',
      phase: 'Pending',
      labels: template.metadata.labels,
      annotations,
      containers,
    }),
    ...podTargets({
      name: 'cache-0',
      ip: '127.0.0.3',
      phase: 'Running',
      labels: { 'app.kubernetes.io/name': 'cache' },
      annotations: {},
      containers: [{ name: 'cache', ports: [{ name: 'redis', port: 6379 }] }],
    }),
  ]
  writeTargets(targetsFile, groups)
  await waitFor(
    'the pod target to be scraped with all 5 workers',
    async () =>
      (await prom.query(`cluster_metrics_workers_answered{job="${JOB}"}`))[0]?.value?.[1] === '5',
    { timeoutMs: 60_000, intervalMs: 200 },
  )
})

after(async () => {
  await prom?.stop()
  await app?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

test('promtool accepts the scrape config and its relabelling', () => {
  const file = join(dir, 'prometheus.yml')
  writeFileSync(file, withDiscoveryFile(join(dir, 'pods.json')))
  const result = runCommand(PROMTOOL_BIN, ['check', 'config', file])
  assert.equal(result.code, 0, result.stdout + result.stderr)
})

test('one target per pod: the annotated port of a running pod, labelled with pod and namespace', async () => {
  const targets = (await prom.targets()).filter((t) => t.labels.job === JOB)
  assert.equal(targets.length, 1, JSON.stringify(targets.map((t) => t.scrapeUrl)))
  const [target] = targets
  assert.equal(target.health, 'up', target.lastError)
  assert.equal(target.scrapeUrl, `http://127.0.0.1:${app.port}/metrics`)
  assert.deepEqual(target.labels, {
    job: JOB,
    instance: POD,
    pod: POD,
    namespace: NAMESPACE,
    app: 'webapp',
  })
})

test('the pod’s one scrape holds every worker, told apart by worker_id', async () => {
  const up = await prom.query(`cluster_metrics_worker_up{job="${JOB}"}`)
  assert.deepEqual(up.map((s) => s.metric.worker_id).sort(), ['0', '1', '2', '3', '4'])
  for (const s of up) assert.equal(s.metric.pod, POD)
  const starts = await prom.query(`count by (pod) (process_start_time_seconds{job="${JOB}"})`)
  assert.deepEqual(
    starts.map((s) => [s.metric.pod, s.value?.[1]]),
    [[POD, '5']],
  )
})

test('the dashboard finds the job and the pod, and shows every worker of it', async () => {
  const dashboard = readDashboard()
  const jobs = await fetch(
    `${prom.url}/api/v1/label/job/values?match[]=cluster_metrics_workers_expected`,
  )
  assert.deepEqual(((await jobs.json()) as { data: string[] }).data, [JOB])
  const panel = dashboard.panels.find((p) => p.title === 'Workers answering the gather')
  assert.ok(panel?.targets)
  const samples = await prom.query(
    substitute(panel.targets[0].expr, {
      variables: { job: JOB, instance: '.*', worker: '.*', route: '.*' },
      rateInterval: '20s',
      range: '300s',
    }),
  )
  assert.deepEqual(
    samples.map((s) => `${s.metric.instance} w${s.metric.worker_id}`).sort(),
    ['0', '1', '2', '3', '4'].map((w) => `${POD} w${w}`),
  )
})
