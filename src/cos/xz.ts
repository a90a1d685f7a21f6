// The `.xz` container Python's lzma.compress() writes and lzma.decompress() reads, holding the data
// as LZMA2 *uncompressed* chunks: valid xz that any xz decoder reads, written without an LZMA
// encoder. The cos_agent interface carries Grafana dashboards as base64(lzma.compress(json)); the
// agent only decompresses them, so stored chunks are all it needs (a dashboard is a few KiB).
// Format: the .xz file format 1.1.0 (tukaani.org/xz/xz-file-format.txt). Pure.

/** Built on first use, not at load: every hook loads this file, few publish a dashboard, and the
 * 2,048 steps cost a no-op hook most of a millisecond in V8's interpreter. */
let crcTable: Uint32Array | undefined;

function crcTableOnce(): Uint32Array {
  if (crcTable) return crcTable;
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  crcTable = table;
  return table;
}

/** CRC-32 (IEEE 802.3), as xz uses it for headers, the index and the block check. */
export function crc32(bytes: Uint8Array): number {
  const table = crcTableOnce();
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

/** xz's variable-length integer: 7 bits a byte, least significant first. */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function padTo4(length: number): number[] {
  return new Array((4 - (length % 4)) % 4).fill(0);
}

const CHECK_CRC32 = 0x01;
const CHUNK = 0x10000;

/** `data` as an .xz stream (one block, CRC32 check, LZMA2 uncompressed chunks). */
export function xzStore(data: Uint8Array): Buffer {
  const streamFlags = [0x00, CHECK_CRC32];
  const header = [
    0xfd,
    0x37,
    0x7a,
    0x58,
    0x5a,
    0x00,
    ...streamFlags,
    ...le32(crc32(Uint8Array.from(streamFlags))),
  ];

  // Block header: size, flags (one filter, no sizes), LZMA2 filter with a 1-byte property (the
  // dictionary size: 4 KiB is plenty for stored chunks), padding, CRC32.
  const blockFields = [0x00, 0x21, 0x01, 0x00];
  const headerLength = 1 + blockFields.length;
  const blockHeaderBody = [0, ...blockFields, ...padTo4(headerLength)];
  blockHeaderBody[0] = (blockHeaderBody.length + 4) / 4 - 1;
  const blockHeader = [...blockHeaderBody, ...le32(crc32(Uint8Array.from(blockHeaderBody)))];

  // LZMA2: each chunk is 0x01 (first: dictionary reset) or 0x02, its size - 1 big-endian, the bytes.
  const parts: Uint8Array[] = [];
  let compressedLength = 0;
  for (let offset = 0; offset < data.length; offset += CHUNK) {
    const chunk = data.subarray(offset, Math.min(offset + CHUNK, data.length));
    const control = Uint8Array.of(
      offset === 0 ? 0x01 : 0x02,
      (chunk.length - 1) >>> 8,
      (chunk.length - 1) & 0xff,
    );
    parts.push(control, chunk);
    compressedLength += control.length + chunk.length;
  }
  parts.push(Uint8Array.of(0x00));
  compressedLength += 1;
  const blockPadding = padTo4(compressedLength);
  const check = le32(crc32(data));
  const unpaddedSize = blockHeader.length + compressedLength + check.length;

  const indexBody = [0x00, ...varint(1), ...varint(unpaddedSize), ...varint(data.length)];
  indexBody.push(...padTo4(indexBody.length));
  const index = [...indexBody, ...le32(crc32(Uint8Array.from(indexBody)))];

  const backward = [...le32(index.length / 4 - 1), ...streamFlags];
  const footer = [...le32(crc32(Uint8Array.from(backward))), ...backward, 0x59, 0x5a];

  return Buffer.concat([
    Uint8Array.from(header),
    Uint8Array.from(blockHeader),
    ...parts,
    Uint8Array.from(blockPadding),
    Uint8Array.from(check),
    Uint8Array.from(index),
    Uint8Array.from(footer),
  ]);
}
