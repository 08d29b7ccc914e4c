// ES module entry for Portunus's janus.js: `import Janus from './janus.mjs'`. One source of truth:
// janus.js defines `globalThis.Janus`; this module runs it once and exports that same object.
import './janus.js';

const Janus = globalThis.Janus;
export { Janus };
export default Janus;
