/**
 * Data path defaults of every share the gateway renders, measured with bench/throughput.ts (figures in
 * bench/README.md). None of them touches the security profile (signing and encryption stay as required).
 *
 * - `aio read size = 0`, `aio write size = 0`: smbd does each read and write itself instead of handing
 *   it to its thread pool and waiting for the answer. When the data is in memory (page cache, ZFS ARC,
 *   tmpfs) the hand-off costs more than the I/O: on the 2-core test machine smbd needed 0.87 instead of
 *   1.08 CPU-seconds per GiB moved and a single client got 8 % (write) to 52 % (read) more throughput.
 *   The cost: one connection's requests wait for each other, which matters only when a single client
 *   keeps many requests in flight against data that must come from slow disks; such a share can turn
 *   async I/O back on with `--option aio_read_size=1 --option aio_write_size=1` (options are rendered
 *   after these lines, and Samba keeps the last value).
 *
 * Measured and left at Samba's defaults: the tree connect audit (no measurable cost), `vfs_io_uring`
 * (no gain over the thread pool here), `server smb3 signing algorithms` (Samba 4.17 already negotiates
 * AES-128-GMAC, the cheapest), `use sendfile` (not used while signing), `log level = 0` (no change).
 */
import type { Params } from './profiles.ts';

export function dataPathParams(): Params {
  return [['aio read size', '0'], ['aio write size', '0']];
}
