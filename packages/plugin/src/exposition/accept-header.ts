// An HTTP Accept header (RFC 9110 §12.5.1) read into media ranges: type, subtype, parameters
// and q-value. Elements that do not parse are left out, so one bad element does not cost the
// rest of the header.

export interface MediaRange {
  /** Lower-cased, `*` for a wildcard. */
  type: string
  subtype: string
  /** Parameters other than `q`: names lower-cased, quoted values unquoted, values as sent. */
  params: Record<string, string>
  q: number
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
// RFC 9110 qvalue: 0 to 1 with at most three decimals.
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/** The well-formed media ranges of `header`, in order. */
export function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = []
  for (const element of splitOutside(header, ',')) {
    const range = parseMediaRange(element)
    if (range !== undefined) ranges.push(range)
  }
  return ranges
}

function parseMediaRange(element: string): MediaRange | undefined {
  const [full, ...parameters] = splitOutside(element, ';')
  const [type, subtype, extra] = full.trim().toLowerCase().split('/')
  if (extra !== undefined || !TOKEN.test(type ?? '') || !TOKEN.test(subtype ?? '')) return undefined
  if (type === '*' && subtype !== '*') return undefined
  const params: Record<string, string> = {}
  let q = 1
  for (const parameter of parameters) {
    const eq = parameter.indexOf('=')
    if (eq === -1) return undefined
    const name = parameter.slice(0, eq).trim().toLowerCase()
    const value = unquote(parameter.slice(eq + 1).trim())
    if (!TOKEN.test(name) || value === undefined) return undefined
    if (name === 'q') {
      if (!QVALUE.test(value)) return undefined
      q = Number(value)
    } else params[name] = value
  }
  return { type, subtype, params, q }
}

/** A token as it is, a quoted string without its quotes and escapes; undefined if neither. */
function unquote(value: string): string | undefined {
  if (!value.startsWith('"')) return TOKEN.test(value.toLowerCase()) ? value : undefined
  if (value.length < 2 || !value.endsWith('"')) return undefined
  let out = ''
  for (let i = 1; i < value.length - 1; i++) {
    if (value[i] === '\\') {
      i++
      if (i === value.length - 1) return undefined
    } else if (value[i] === '"') return undefined
    out += value[i]
  }
  return out
}

/** Splits on `separator` except inside quoted strings (which may hold backslash escapes). */
function splitOutside(text: string, separator: string): string[] {
  const pieces: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (quoted) {
      if (char === '\\') i++
      else if (char === '"') quoted = false
    } else if (char === '"') quoted = true
    else if (char === separator) {
      pieces.push(text.slice(start, i))
      start = i + 1
    }
  }
  pieces.push(text.slice(start))
  return pieces
}
