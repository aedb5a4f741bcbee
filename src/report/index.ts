export { renderReport, writeReport } from './html.js';
export { readRunRecord } from './read.js';
