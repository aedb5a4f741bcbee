// The registry of shape/value rules: ONNX op type (default domain) → OpRule.
import { OnnxError } from '../errors.js';
import { CONSTANT_RULES } from './constants.js';
import { CONV_RULES } from './conv.js';
import { ELEMENTWISE_RULES } from './elementwise.js';
import { LAYOUT_RULES } from './layout.js';
import { LINALG_RULES } from './linalg.js';
import { REDUCE_RULES } from './reduce.js';
import type { OpRule } from './rule.js';

export type { OpRule, RuleContext } from './rule.js';

function merge(...tables: Record<string, OpRule>[]): ReadonlyMap<string, OpRule> {
  const rules = new Map<string, OpRule>();
  for (const table of tables) {
    for (const [op, rule] of Object.entries(table)) {
      if (rules.has(op)) throw new OnnxError(`duplicate shape rule for ${op}`);
      rules.set(op, rule);
    }
  }
  return rules;
}

/** Shape inference and constant evaluation rules by op type. */
export const RULES = merge(CONSTANT_RULES, CONV_RULES, ELEMENTWISE_RULES, LAYOUT_RULES, LINALG_RULES, REDUCE_RULES);
