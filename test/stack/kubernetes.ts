// The Kubernetes manifests of deploy/kubernetes, read as the API server would receive them,
// and their checks against the API's own schemas through kubernetes-models:
//   validate()  the models' compiled OpenAPI schemas: types, enums, required fields;
//   typeCheck() the models' TypeScript interfaces, whose excess-property check rejects a field
//               the API does not define (the schemas allow unknown fields, the API server in
//               strict field validation does not).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { ROOT, runCommand } from '../../harness/stack'

export const KUBERNETES_DIR = join(ROOT, 'deploy', 'kubernetes')
export const SCRAPE_CONFIG = join(KUBERNETES_DIR, 'prometheus-scrape.yml')

export interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string; labels?: Record<string, string> }
  // biome-ignore lint/suspicious/noExplicitAny: the checks below read any part of a manifest
  spec: any
}

/** Every YAML document of a file. */
export function parseYamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as unknown)
    .filter((doc) => doc !== null)
}

export interface Kustomization {
  resources: string[]
}

export const readKustomization = () =>
  parseYamlDocuments(
    readFileSync(join(KUBERNETES_DIR, 'kustomization.yaml'), 'utf8'),
  )[0] as Kustomization

/** The resources kustomization.yaml lists, each with the file it came from. */
export function readManifests(): Array<{ file: string; manifest: Manifest }> {
  return readKustomization().resources.flatMap((file) =>
    parseYamlDocuments(readFileSync(join(KUBERNETES_DIR, file), 'utf8')).map((doc) => ({
      file,
      manifest: doc as Manifest,
    })),
  )
}

/** The model class and interface for each kind the manifests use. */
const MODELS: Record<string, { module: string; name: string }> = {
  'apps/v1 Deployment': { module: 'kubernetes-models/apps/v1/Deployment', name: 'Deployment' },
  'v1 Service': { module: 'kubernetes-models/v1/Service', name: 'Service' },
  'monitoring.coreos.com/v1 PodMonitor': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
    name: 'PodMonitor',
  },
}

function modelFor(manifest: Manifest) {
  const model = MODELS[`${manifest.apiVersion} ${manifest.kind}`]
  if (!model) throw new Error(`no model for ${manifest.apiVersion} ${manifest.kind}`)
  return model
}

/** Validates against the model's schema; throws the schema's errors. */
export async function validateManifest(manifest: Manifest): Promise<void> {
  const { module, name } = modelFor(manifest)
  // The models are ES modules only: a dynamic import loads them from this CommonJS package.
  const loaded = (await import(module)) as Record<
    string,
    new (
      data: unknown,
    ) => { validate(): void }
  >
  new loaded[name](manifest).validate()
}

/**
 * Type-checks the manifests as object literals of the models' interfaces, in a scratch ES
 * module next to node_modules so the packages resolve. Returns tsc's exit code and output.
 */
export function typeCheck(manifests: Manifest[]): { code: number; output: string } {
  const dir = mkdtempSync(join(ROOT, 'node_modules', '.k8s-typecheck-'))
  try {
    const lines = manifests.map((manifest, i) => {
      const { module, name } = modelFor(manifest)
      return [
        `import type { I${name} as T${i} } from '${module}'`,
        `export const m${i}: T${i} = ${JSON.stringify(manifest, null, 2)}`,
      ].join('\n')
    })
    const file = join(dir, 'manifests.mts')
    writeFileSync(file, `${lines.join('\n\n')}\n`)
    const result = runCommand(join(ROOT, 'node_modules', '.bin', 'tsc'), [
      '--ignoreConfig',
      '--noEmit',
      '--strict',
      '--skipLibCheck',
      '--target',
      'es2022',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--types',
      'node',
      file,
    ])
    return { code: result.code, output: result.stdout + result.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
