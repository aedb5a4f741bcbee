// Models whose file fixes the batch size (torch.onnx.export without dynamic axes writes batch 1): made to run at any batch.
import { attrInt } from './attrs.js';
import { OnnxError } from './errors.js';
import { foldConstants } from './fold.js';
import type { Dim, OnnxModel, ValueInfo } from './ir.js';
import { propagate, concreteInputShapes } from './shapes.js';
import { makeTensor, toNumbers } from './tensor.js';

/** The symbolic name freeBatch gives the batch dim. */
const FREED = 'N';

/** What to do about a model that only runs at the batch size it was exported with. */
export const HOW_TO_EXPORT =
  "pdquant calibrates in batches, so export it with a dynamic batch dimension: torch.onnx.export(..., dynamic_axes={'input': {0: 'N'}, 'output': {0: 'N'}}), " +
  'or with dynamic_shapes when dynamo=True';

/** The batch size the model's first input declares as a number, or null when its batch dim is symbolic (or absent). */
export function declaredBatch(model: Pick<OnnxModel, 'inputs'>): number | null {
  const d = model.inputs[0]?.dims?.[0];
  return typeof d === 'number' ? d : null;
}

/** Value infos whose batch dim (dim 0) is `to` where it was `from`. */
function replaceBatchDim(infos: ValueInfo[], from: Dim, to: Dim): ValueInfo[] {
  return infos.map((v) => (v.dims && v.dims.length > 0 && v.dims[0] === from ? { ...v, dims: [to, ...v.dims.slice(1)] } : v));
}

/** The model (as freeBatch made it) with the batch size the file declared put back into its inputs and outputs. */
export function withDeclaredBatch(model: OnnxModel, batch: number | null): OnnxModel {
  if (batch === null) return model;
  return { ...model, inputs: replaceBatchDim(model.inputs, FREED, batch), outputs: replaceBatchDim(model.outputs, FREED, batch) };
}

/**
 * A model whose inputs declare a static batch size, rewritten to run at any batch: folded at the declared batch,
 * every Reshape target that repeats the batch as its first entry gets 0 ("copy dim 0") instead, and the batch dims
 * of inputs and outputs become symbolic. Unchanged at the declared batch by construction; a model that computes with
 * its batch size in another way fails to fold for other sizes, and gets one error saying how to export it instead.
 * Models with a symbolic batch come back as they are.
 */
export function freeBatch(model: OnnxModel, label = 'the model'): OnnxModel {
  const batch = declaredBatch(model);
  if (batch === null) return model;
  const folded = foldConstants(model, { batch });
  const shapes = propagate(folded, concreteInputShapes(folded, batch)).shapes;
  const initializers = new Map(folded.initializers);
  const nodes = folded.nodes.map((node) => {
    if (node.opType !== 'Reshape' || attrInt(node, 'allowzero', 0) === 1) return node;
    const target = initializers.get(node.inputs[1] ?? '');
    const input = shapes.get(node.inputs[0] ?? '');
    if (!target || !input || input[0] !== batch) return node;
    const entries = toNumbers(target);
    if (entries[0] !== batch) return node;
    const free = makeTensor(`${target.name}_batch_free`, target.dataType, target.dims, [0, ...entries.slice(1)]);
    initializers.set(free.name, free);
    return { ...node, inputs: [node.inputs[0]!, free.name, ...node.inputs.slice(2)] };
  });
  const freed: OnnxModel = {
    ...folded,
    nodes,
    initializers,
    inputs: replaceBatchDim(folded.inputs, batch, FREED),
    outputs: replaceBatchDim(folded.outputs, batch, FREED),
  };
  try {
    return foldConstants(freed);
  } catch (e) {
    if (!(e instanceof OnnxError)) throw e;
    throw new OnnxError(
      `${label} is exported for batch size ${batch} only and computes with that size (${e.message.replace(/ \(at batch size.*$/s, '')}); ${HOW_TO_EXPORT}`,
    );
  }
}
