// The exposition layer of the cluster view: which format a scrape gets, each worker's registry
// rendered in it, and the workers' texts merged into one answer. No sockets, no Fastify.
export {
  CONTENT_TYPES,
  type ExpositionFormat,
  type Negotiated,
  negotiate,
} from './exposition-format'
export { type ExpositionPart, mergeExpositions } from './exposition-merge'
export { renderRegistry } from './exposition-render'
