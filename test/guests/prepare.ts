/**
 * Builds (or checks) every cached guest artefact and prints how long each took:
 *   node --import tsx test/guests/prepare.ts [rootfs|shifted|template|vm ...]
 * Tests build what they need on first use; this is for warming a machine up or timing a fresh build.
 */
import { buildCtTemplate, buildRootfs, shiftedRootfs } from './rootfs.ts';
import { buildVmImage } from './vm.ts';

const what = process.argv.slice(2);
const all = what.length === 0;
const t0 = Date.now();
const show = (label: string, r: { path: string; built: boolean; seconds: number }) =>
  console.log(`${label.padEnd(9)} ${r.built ? 'built ' : 'cached'} ${r.seconds.toFixed(2).padStart(7)} s  ${r.path}`);
if (all || what.includes('rootfs')) show('rootfs', await buildRootfs());
if (all || what.includes('shifted')) show('shifted', await shiftedRootfs());
if (all || what.includes('template')) show('template', await buildCtTemplate());
if (all || what.includes('vm')) show('vm', await buildVmImage());
console.log(`total     ${((Date.now() - t0) / 1000).toFixed(2)} s`);
