// deploy/kubernetes, offline: every manifest against the Kubernetes API schemas (kubernetes-
// models; a misspelt field or a wrong type fails), and the Deployment against the facts it
// depends on: the image's command, PM2's kill_timeout, the service's drain, the measured memory.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT } from '../../harness/stack'
import { SHUTDOWN_GRACE_MS } from '../../src/config'
import {
  KUBERNETES_DIR,
  type Manifest,
  readKustomization,
  readManifests,
  typeCheck,
  validateManifest,
} from './kubernetes'
import { MEMORY_FILE, type MemoryFigures, podMemoryBytes } from './measure-pod-memory'

const manifests = readManifests()
const byKind = (kind: string) => {
  const found = manifests.filter((m) => m.manifest.kind === kind)
  assert.equal(found.length, 1, `one ${kind}`)
  return found[0].manifest
}
const deployment = byKind('Deployment')
const pod = deployment.spec.template
const [container] = pod.spec.containers
const env = (name: string): string | undefined =>
  container.env.find((e: { name: string }) => e.name === name)?.value

/** Kubernetes quantities as bytes (the binary and decimal suffixes the manifests use). */
function bytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity)
  assert.ok(match, `quantity ${quantity}`)
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 }
  return Number(match[1]) * (match[2] ? unit[match[2] as keyof typeof unit] : 1)
}

test('kustomization.yaml lists every manifest of the folder', () => {
  const yamlFiles = readdirSync(KUBERNETES_DIR)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort()
  assert.deepEqual([...readKustomization().resources].sort(), yamlFiles)
  assert.deepEqual(manifests.map((m) => m.manifest.kind).sort(), [
    'Deployment',
    'PodMonitor',
    'Service',
  ])
})

test('every manifest passes the API schema of its kind', async () => {
  for (const { file, manifest } of manifests) {
    await assert.doesNotReject(validateManifest(manifest), `${file}: ${manifest.kind}`)
  }
})

test('every manifest has only fields the API defines', () => {
  const { code, output } = typeCheck(manifests.map((m) => m.manifest))
  assert.equal(code, 0, output)
})

test('a misspelt field or a wrong type is rejected', async () => {
  // Each copy carries one mistake; the check must name it.
  const misspeltContainer = structuredClone(deployment)
  misspeltContainer.spec.template.spec.containers[0].resource =
    misspeltContainer.spec.template.spec.containers[0].resources
  const misspeltProbe = structuredClone(deployment)
  misspeltProbe.spec.template.spec.containers[0].readinessProbe.httpGet.paht = '/health'
  const podMonitor = structuredClone(byKind('PodMonitor'))
  podMonitor.spec.podMetricsEndpoints[0].intervall = '5s'
  for (const [manifest, field] of [
    [misspeltContainer, 'resource'],
    [misspeltProbe, 'paht'],
    [podMonitor, 'intervall'],
  ] as Array<[Manifest, string]>) {
    const { code, output } = typeCheck([manifest])
    assert.notEqual(code, 0, `${field} accepted`)
    assert.match(output, new RegExp(`'"${field}"' does not exist in type`))
  }

  const wrongType = structuredClone(deployment)
  wrongType.spec.replicas = '3'
  await assert.rejects(validateManifest(wrongType), /spec\/replicas must be integer/)
  const wrongShape = structuredClone(byKind('Service'))
  wrongShape.spec.ports[0].targetPort = { name: 'http' }
  await assert.rejects(validateManifest(wrongShape), /targetPort/)
})

test('the container runs the image’s command (config check, then pm2-runtime) with INSTANCES workers', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)
  assert.ok(cmd, 'Dockerfile has a CMD')
  assert.deepEqual(container.command, JSON.parse(cmd[1]))
  assert.match(readFileSync(join(ROOT, container.command[0]), 'utf8'), /exec \S*pm2-runtime start/)
  assert.match(env('INSTANCES') ?? '', /^[1-9]\d*$/)
  assert.equal(env('PORT'), String(container.ports[0].containerPort))
})

test('probes ask /health on the service port', () => {
  assert.deepEqual(
    container.ports.map((p: { name: string }) => p.name),
    ['http'],
  )
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    assert.deepEqual(container[probe].httpGet, { path: '/health', port: 'http' }, probe)
  }
  // Liveness gives up later than readiness: a busy pod leaves the endpoints before it restarts.
  const { readinessProbe: ready, livenessProbe: live } = container
  assert.ok(
    live.periodSeconds * live.failureThreshold > ready.periodSeconds * ready.failureThreshold,
  )
})

test('the termination grace outlasts preStop, the drain and PM2’s kill_timeout', () => {
  const [sleep, seconds] = container.lifecycle.preStop.exec.command
  assert.equal(sleep, 'sleep')
  const ecosystem = require(join(ROOT, 'ecosystem.config.js')) as {
    apps: Array<{ kill_timeout: number }>
  }
  const killTimeoutS = ecosystem.apps[0].kill_timeout / 1000
  // The workers drain within the shutdown grace; PM2 SIGKILLs them at kill_timeout;
  // Kubernetes SIGKILLs the pod at terminationGracePeriodSeconds, counted from preStop's start.
  assert.ok(SHUTDOWN_GRACE_MS / 1000 < killTimeoutS)
  assert.ok(pod.spec.terminationGracePeriodSeconds > Number(seconds) + killTimeoutS)
})

test('memory is sized from the measured RSS of pm2-runtime and its workers', () => {
  const figures = JSON.parse(readFileSync(MEMORY_FILE, 'utf8')) as MemoryFigures
  const instances = Number(env('INSTANCES'))
  const needed = podMemoryBytes(figures, instances)
  const request = bytes(container.resources.requests.memory)
  const limit = bytes(container.resources.limits.memory)
  assert.ok(request >= needed, `request ${request} below the measured ${needed}`)
  assert.ok(request < 1.5 * needed, `request ${request} far above the measured ${needed}`)
  assert.ok(limit >= 2 * request, 'room above the request for heap growth under load')
  assert.ok(container.resources.requests.cpu, 'a CPU request for scheduling')
})

test('non-root, read-only root filesystem; every writable path is an emptyDir', () => {
  assert.equal(pod.spec.securityContext.runAsNonRoot, true)
  assert.ok(pod.spec.securityContext.runAsUser > 0)
  assert.equal(pod.spec.automountServiceAccountToken, false)
  const sc = container.securityContext
  assert.equal(sc.readOnlyRootFilesystem, true)
  assert.equal(sc.allowPrivilegeEscalation, false)
  assert.deepEqual(sc.capabilities.drop, ['ALL'])
  const volumes = new Map(
    pod.spec.volumes.map((v: { name: string; emptyDir?: object }) => [v.name, v]),
  )
  const mounts: string[] = container.volumeMounts.map((m: { name: string; mountPath: string }) => {
    assert.ok((volumes.get(m.name) as { emptyDir?: object })?.emptyDir, `${m.name} is an emptyDir`)
    return m.mountPath
  })
  // PM2's home and the workers' metrics sockets are written at run time.
  for (const variable of ['PM2_HOME', 'METRICS_SOCKET_DIR']) {
    const path = env(variable)
    assert.ok(path, `${variable} is set`)
    assert.ok(
      mounts.some((m) => path === m || path.startsWith(`${m}/`)),
      `${variable}=${path} is not on a writable mount`,
    )
  }
})

test('Service and PodMonitor select the pods, by the port the container names', () => {
  const labels = pod.metadata.labels
  const selects = (selector: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels[k] === v)
  assert.ok(selects(deployment.spec.selector.matchLabels))
  const service = byKind('Service')
  assert.ok(selects(service.spec.selector))
  assert.equal(service.spec.ports[0].targetPort, container.ports[0].name)
  const podMonitor = byKind('PodMonitor')
  assert.ok(selects(podMonitor.spec.selector.matchLabels))
  const [endpoint] = podMonitor.spec.podMetricsEndpoints
  assert.equal(endpoint.port, container.ports[0].name)
  assert.equal(endpoint.path, '/metrics')
  // The service's gather deadline sits below the scrape timeout, which sits below the interval.
  assert.ok(Number.parseInt(endpoint.scrapeTimeout, 10) < Number.parseInt(endpoint.interval, 10))
})

test('the pod annotations name the port and path the plain-Prometheus job scrapes', () => {
  const annotations = pod.metadata.annotations
  assert.equal(annotations['prometheus.io/scrape'], 'true')
  assert.equal(annotations['prometheus.io/port'], String(container.ports[0].containerPort))
  assert.equal(annotations['prometheus.io/path'], '/metrics')
})
