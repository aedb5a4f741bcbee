// What pdquant's executor runs: the supported op table and the check that lists everything else.
import { attrString, isDefaultDomain } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxNode } from './ir.js';
import { RULES } from './rules/index.js';

interface OpSupport {
  /** Names of inputs (by position) that must be initializers, e.g. Pad's pads; '' for inputs that may be computed. */
  constantInputs?: string[];
  /** A reason the node is refused despite its op being supported, or undefined. */
  refuse?(node: OnnxNode): string | undefined;
}

const SUPPORT: Record<string, OpSupport> = {
  Conv: { constantInputs: ['', 'W', 'B'] },
  BatchNormalization: { constantInputs: ['', 'scale', 'B', 'input_mean', 'input_var'] },
  Relu: {},
  Clip: { constantInputs: ['', 'min', 'max'] },
  Add: {},
  Mul: {},
  Sub: {},
  Div: {},
  Sigmoid: {},
  Erf: {},
  Gelu: {},
  Sqrt: {},
  Pow: {},
  LayerNormalization: {
    constantInputs: ['', 'Scale', 'B'],
    refuse(node) {
      return node.outputs.slice(1).some((o) => o !== '') ? 'LayerNormalization with its Mean or InvStdDev output' : undefined;
    },
  },
  HardSigmoid: {},
  HardSwish: {},
  MaxPool: {},
  AveragePool: {},
  GlobalAveragePool: {},
  ReduceMean: { constantInputs: ['', 'axes'] },
  Flatten: {},
  Reshape: { constantInputs: ['', 'shape'] },
  Transpose: {},
  Squeeze: { constantInputs: ['', 'axes'] },
  Unsqueeze: { constantInputs: ['', 'axes'] },
  Gemm: { constantInputs: ['', 'B', 'C'] },
  MatMul: {},
  Pad: {
    constantInputs: ['', 'pads', 'constant_value', 'axes'],
    refuse(node) {
      const mode = attrString(node, 'mode', 'constant');
      return mode === 'constant' ? undefined : `Pad in mode '${mode}'`;
    },
  },
  Slice: { constantInputs: ['', 'starts', 'ends', 'axes', 'steps'] },
  // Rewritten as Slices at load (split.ts).
  Split: { constantInputs: ['', 'split'] },
  Gather: { constantInputs: ['', 'indices'] },
  Concat: {},
  Identity: {},
  Cast: {
    refuse(node) {
      const to = node.attrs.to?.type === 'int' ? node.attrs.to.value : undefined;
      return to === 1 ? undefined : `Cast to a type other than float32 (to=${to ?? '?'})`;
    },
  },
  Dropout: {},
};

/** ONNX op types (default domain) that pdquant's executor runs. */
export const SUPPORTED_OPS: ReadonlySet<string> = new Set(Object.keys(SUPPORT));

/** Why a node cannot run, or undefined when it can. */
function problemOf(node: OnnxNode, model: OnnxModel): string | undefined {
  if (!isDefaultDomain(node)) return `${node.domain}::${node.opType}`;
  const support = SUPPORT[node.opType];
  if (!support) return node.opType;
  const computed = (support.constantInputs ?? []).find((name, i) => name !== '' && (node.inputs[i] ?? '') !== '' && !model.initializers.has(node.inputs[i]));
  if (computed) return `${node.opType} with a computed ${computed}`;
  return support.refuse?.(node);
}

/** Node names shown per unsupported op; the rest are counted. */
const NODES_SHOWN = 3;

/** "nodes: a, b", or past NODES_SHOWN names "44 nodes: a, b, c and 41 more" (a transformer repeats one op dozens of times). */
export function nodeList(names: readonly string[]): string {
  if (names.length <= NODES_SHOWN) return `nodes: ${names.join(', ')}`;
  return `${names.length} nodes: ${names.slice(0, NODES_SHOWN).join(', ')} and ${names.length - NODES_SHOWN} more`;
}

/** Throws one OnnxError listing every unsupported op (with its nodes); returns if the executor can run the whole model. */
export function checkSupported(model: OnnxModel): void {
  const problems = new Map<string, string[]>();
  for (const node of model.nodes) {
    const problem = problemOf(node, model);
    if (problem !== undefined) problems.set(problem, [...(problems.get(problem) ?? []), node.name || node.outputs[0]]);
  }
  if (problems.size === 0) return;
  const list = [...problems].map(([problem, nodes]) => `${problem} (${nodeList(nodes)})`).join(', ');
  // Constant folding has run (loadModel, inspect): shape arithmetic left over reads values only the network computes.
  const leftoverShapes = [...problems.keys()].some((p) => RULES.get(p)?.evaluate);
  const outputs = new Set(model.outputs.map((v) => v.name));
  const head = model.nodes.find((n) => (n.opType === 'Softmax' || n.opType === 'LogSoftmax') && n.outputs.some((o) => outputs.has(o)));
  const attention = model.nodes.some((n) => (n.opType === 'Softmax' && n !== head) || n.opType === 'Einsum');
  throw new OnnxError(
    `Unsupported ONNX ops: ${list}. pdquant supports: ${[...SUPPORTED_OPS].join(', ')} ` +
      '(Pad in constant mode; default ONNX domain only; weights, pads, shapes, axes, slice bounds and gather indices as constants).' +
      (attention ? ' Attention (a Softmax or Einsum inside the network, as in vision transformers) is not supported: pdquant quantizes convolutional networks.' : '') +
      (leftoverShapes ? ' pdquant folds shape arithmetic (Shape, Gather, ...) into constants where it can; what is listed reads values that only the network computes, often behind one of the other ops listed, or the batch size.' : '') +
      (head ? ` The model ends in ${head.opType} (node ${head.name}): export it returning the logits instead; top-1 and PD-Quant's loss work on logits, and your deployment can apply the ${head.opType} after the quantized model.` : ''),
  );
}
