// Module paths that torch.onnx.export(dynamo=True) records on each node (NodeProto.metadata_props, a field newer than
// the onnx-proto schema pdquant decodes with), read straight from the protobuf wire format.
import protobuf from 'protobufjs/minimal.js';

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const NODE_METADATA_PROPS = 9;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const LENGTH_DELIMITED = 2;

/** The metadata key holding repr() of the cumulative module paths: ['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d']. */
export const NAME_SCOPES_KEY = 'pkg.torch.onnx.name_scopes';

/** Calls `each` with the bytes of every length-delimited field `field` of a message, without copying them. */
function fields(bytes: Uint8Array, field: number, each: (value: Uint8Array) => void): void {
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === field && (tag & 7) === LENGTH_DELIMITED) {
      const length = r.uint32();
      each(bytes.subarray(r.pos, r.pos + length));
      r.pos += length;
    } else r.skipType(tag & 7);
  }
}

/** The string value of field `field` in a message, or undefined. */
function stringField(bytes: Uint8Array, field: number): string | undefined {
  let value: string | undefined;
  fields(bytes, field, (v) => (value = new TextDecoder().decode(v)));
  return value;
}

/**
 * For each node of the main graph, in file order: its module path (the cumulative entries between the root '' and
 * the node's own name, e.g. ['layer1', 'layer1.0', 'layer1.0.conv1']), or undefined where the node records none.
 */
export function nodeScopes(model: Uint8Array): (string[] | undefined)[] {
  const scopes: (string[] | undefined)[] = [];
  fields(model, MODEL_GRAPH, (graph) =>
    fields(graph, GRAPH_NODE, (node) => {
      let scope: string[] | undefined;
      fields(node, NODE_METADATA_PROPS, (entry) => {
        if (stringField(entry, ENTRY_KEY) !== NAME_SCOPES_KEY) return;
        const entries = [...(stringField(entry, ENTRY_VALUE) ?? '').matchAll(/'([^']*)'|"([^"]*)"/g)].map((m) => m[1] ?? m[2] ?? '');
        scope = entries.slice(entries[0] === '' ? 1 : 0, -1);
      });
      scopes.push(scope);
    }),
  );
  return scopes;
}
