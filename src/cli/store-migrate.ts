#!/usr/bin/env node
/**
 * Brings the share store to the current format (core/storeformat.ts); run by the package's postinst
 * on install and upgrade. Prints what it did; exits 1 with the reason when it cannot.
 */
import { loadSettings } from '../core/settings.ts';
import { ShareStore } from '../core/store.ts';
import { migrateStore } from '../core/storeformat.ts';

try {
  const m = await migrateStore(new ShareStore(loadSettings()));
  if (m) process.stdout.write(`pve-smbgateway: ${m.path}: migrated store format ${m.from} -> ${m.to} (${m.shares} share${m.shares === 1 ? '' : 's'})\n`);
} catch (e) {
  process.stderr.write(`pve-smbgateway: store migration: ${(e as Error).message}\n`);
  process.exit(1);
}
