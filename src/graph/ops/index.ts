/** Loads every op kernel into the registry. */
import './nn.js';
import './elementwise.js';
import './shape.js';
