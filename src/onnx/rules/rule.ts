// What a shape/value rule sees of a node, and what it provides.
import type { OnnxNode, OnnxTensor } from '../ir.js';

/** A node under inference: its attributes, its input shapes and whichever inputs are known constants. */
export interface RuleContext {
  readonly node: OnnxNode;
  /** Opset of the default domain (several ops moved attributes to inputs across opsets). */
  readonly opset: number;
  /** Whether input i is given (optional inputs may be missing or ''). */
  has(i: number): boolean;
  /** Shape of input i (rules only run when every given input has a known shape). */
  shape(i: number): number[];
  /** Value of input i when it is a known constant. */
  value(i: number): OnnxTensor | undefined;
}

/** Shape inference and, for ops that constant folding evaluates, evaluation in plain JS. */
export interface OpRule {
  /** Output shapes; undefined when they depend on an input that is not a known constant. */
  shapes(ctx: RuleContext): number[][] | undefined;
  /** Output values (names are set by the caller); undefined when an input needed is not a known constant. */
  evaluate?(ctx: RuleContext): OnnxTensor[] | undefined;
}
