// Names the JavaScript functions in a callgrind dump of node, then runs callgrind_annotate on it.
// Callgrind knows JIT-compiled code only by address; node's --perf-basic-prof writes
// /tmp/perf-<pid>.map (start, size, name of every code object), which this maps them through.
//   npm run bench -- --callgrind-only --callgrind-runs 1 --callgrind-profile
//   node --import tsx bench/callgrind-annotate.ts <callgrind dump> <perf map> [callgrind_annotate args]
// writes <dump>.named beside the dump and prints the functions with the most instructions.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'

interface CodeRange {
  start: number
  end: number
  name: string
}

export function readPerfMap(file: string): CodeRange[] {
  const ranges: CodeRange[] = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.+)$/.exec(line)
    if (match === null) continue
    const start = Number.parseInt(match[1], 16)
    ranges.push({ start, end: start + Number.parseInt(match[2], 16), name: match[3] })
  }
  return ranges.sort((a, b) => a.start - b.start)
}

function nameAt(ranges: CodeRange[], address: number): string | undefined {
  let lo = 0
  let hi = ranges.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (ranges[mid].start <= address) lo = mid + 1
    else hi = mid - 1
  }
  const range = ranges[hi]
  return range !== undefined && address < range.end ? range.name : undefined
}

/** The dump with every `fn=`/`cfn=` named by a bare address renamed after its code object. */
export function nameFunctions(dump: string, ranges: CodeRange[]): string {
  return dump.replace(/^(c?fn=\(\d+\)) 0x([0-9a-f]+)$/gm, (line, head: string, hex: string) => {
    const name = nameAt(ranges, Number.parseInt(hex, 16))
    return name === undefined ? line : `${head} ${name.replace(/\s+/g, '_')}`
  })
}

if (require.main === module) {
  const [dumpFile, mapFile, ...annotateArgs] = process.argv.slice(2)
  if (dumpFile === undefined || mapFile === undefined) {
    process.stderr.write('usage: callgrind-annotate.ts <callgrind dump> <perf map> [args]\n')
    process.exit(2)
  }
  const named = `${dumpFile}.named`
  writeFileSync(named, nameFunctions(readFileSync(dumpFile, 'utf8'), readPerfMap(mapFile)))
  process.stdout.write(
    execFileSync('callgrind_annotate', ['--threshold=99', ...annotateArgs, named], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    }),
  )
}
