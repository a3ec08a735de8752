// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as MS-VHDX uses for headers,
// region tables and log entries. Node has no built-in, so a slice-by-8 table version:
// eight 256-entry tables let the inner loop consume 8 bytes per step.

const POLY = 0x82f63b78;
const TABLES: Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[0][i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >>> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

/** Continue a CRC-32C over `buf` (pass the previous result as `crc` to chain). */
export function crc32c(buf: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const end8 = buf.length - (buf.length % 8);
  for (; i < end8; i += 8) {
    const lo = (c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))) >>> 0;
    c =
      t7[lo & 0xff] ^ t6[(lo >>> 8) & 0xff] ^ t5[(lo >>> 16) & 0xff] ^ t4[lo >>> 24] ^
      t3[buf[i + 4]] ^ t2[buf[i + 5]] ^ t1[buf[i + 6]] ^ t0[buf[i + 7]];
  }
  for (; i < buf.length; i++) c = t0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC of a structure whose 4-byte checksum field at `fieldOffset` counts as zero. */
export function crc32cWithZeroField(buf: Uint8Array, fieldOffset: number): number {
  let c = crc32c(buf.subarray(0, fieldOffset));
  c = crc32c(new Uint8Array(4), c);
  return crc32c(buf.subarray(fieldOffset + 4), c);
}
