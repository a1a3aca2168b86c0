// The exposition layer of the cluster view: which format a scrape gets, each worker's registry
// rendered in it, and the workers' expositions merged into one answer. No sockets, no Fastify.
export {
  CONTENT_TYPES,
  type Exposition,
  type ExpositionFormat,
  type Negotiated,
  negotiate,
  type TextFormat,
} from './exposition-format'
export {
  appendRendered,
  type DroppedFamily,
  type ExpositionPart,
  mergeExpositions,
  mergeRendered,
  type OnDropped,
  RenderedMerge,
  type RenderedPart,
} from './exposition-merge'
export { type RenderOptions, renderRegistry } from './exposition-render'
export { mergeProtobuf, type ProtobufPart } from './protobuf/merge'
export { PROTOBUF_CONTENT_TYPE } from './protobuf/metrics-schema'
export {
  type NativeFields,
  type NativeFor,
  type ProtobufRenderOptions,
  renderProtobuf,
} from './protobuf/render'
