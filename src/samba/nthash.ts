/** The NT hash: MD4 over the UTF-16LE password (what Samba's passdb stores). */
function md4(msg: Buffer): Buffer {
  const words = ((msg.length + 8) >> 6) * 16 + 16;
  const x = new Uint32Array(words);
  for (let i = 0; i < msg.length; i++) x[i >> 2]! |= msg[i]! << ((i % 4) * 8);
  x[msg.length >> 2]! |= 0x80 << ((msg.length % 4) * 8);
  x[words - 2] = (msg.length * 8) >>> 0;
  x[words - 1] = Math.floor((msg.length * 8) / 2 ** 32);
  let a = 0x67452301, b = 0xefcdab89, c = 0x98badcfe, d = 0x10325476;
  const rol = (v: number, s: number) => (v << s) | (v >>> (32 - s));
  const F = (p: number, q: number, r: number) => (p & q) | (~p & r);
  const G = (p: number, q: number, r: number) => (p & q) | (p & r) | (q & r);
  const H = (p: number, q: number, r: number) => p ^ q ^ r;
  for (let i = 0; i < words; i += 16) {
    const X = (k: number) => x[i + k]!;
    const [aa, bb, cc, dd] = [a, b, c, d];
    for (const k of [0, 4, 8, 12]) {
      a = rol((a + F(b, c, d) + X(k)) | 0, 3); d = rol((d + F(a, b, c) + X(k + 1)) | 0, 7);
      c = rol((c + F(d, a, b) + X(k + 2)) | 0, 11); b = rol((b + F(c, d, a) + X(k + 3)) | 0, 19);
    }
    for (const k of [0, 1, 2, 3]) {
      a = rol((a + G(b, c, d) + X(k) + 0x5a827999) | 0, 3); d = rol((d + G(a, b, c) + X(k + 4) + 0x5a827999) | 0, 5);
      c = rol((c + G(d, a, b) + X(k + 8) + 0x5a827999) | 0, 9); b = rol((b + G(c, d, a) + X(k + 12) + 0x5a827999) | 0, 13);
    }
    for (const k of [0, 2, 1, 3]) {
      a = rol((a + H(b, c, d) + X(k) + 0x6ed9eba1) | 0, 3); d = rol((d + H(a, b, c) + X(k + 8) + 0x6ed9eba1) | 0, 9);
      c = rol((c + H(d, a, b) + X(k + 4) + 0x6ed9eba1) | 0, 11); b = rol((b + H(c, d, a) + X(k + 12) + 0x6ed9eba1) | 0, 15);
    }
    a = (a + aa) | 0; b = (b + bb) | 0; c = (c + cc) | 0; d = (d + dd) | 0;
  }
  const out = Buffer.alloc(16);
  [a, b, c, d].forEach((v, i) => out.writeInt32LE(v, i * 4));
  return out;
}

/** The NT hash Samba keeps for a password (upper-case hex). */
export function ntHash(password: string): string {
  return md4(Buffer.from(password, 'utf16le')).toString('hex').toUpperCase();
}

