// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --cpu-prof`):
// the functions with the most self time, and the inclusive time of those whose source path
// matches a filter (default: this project's metrics plugin and prom-client).
//   node --import tsx bench/profile-summary.ts <file.cpuprofile> [path-regexp] [top]
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

function main(): void {
  const [file, filter = 'plugins/metrics|prom-client', top = '25'] = process.argv.slice(2)
  if (file === undefined) throw new Error('usage: profile-summary <file.cpuprofile> [regexp] [top]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)

  const nameOf = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame
    const where = url
      ? `${url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${lineNumber + 1}`
      : ''
    return `${functionName || '(anonymous)'} ${where}`.trim()
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const pattern = new RegExp(filter)
  let total = 0
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0
    total += micros
    const node = byId.get(id) as ProfileNode
    self.set(nameOf(node), (self.get(nameOf(node)) ?? 0) + micros)
    // Inclusive time, counted once per sample for each matching frame on the stack.
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at) as ProfileNode
      if (!pattern.test(frame.callFrame.url)) continue
      const name = nameOf(frame)
      if (seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + micros)
    }
  })
  const print = (title: string, map: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`)
    for (const [name, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
      process.stdout.write(`${((100 * micros) / total).toFixed(2).padStart(6)} %  ${name}\n`)
    }
  }
  process.stdout.write(`profile: ${(total / 1e6).toFixed(2)} s sampled\n`)
  print('self time', self)
  print(`inclusive time of frames matching /${filter}/`, inclusive)
}

main()
