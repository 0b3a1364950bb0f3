// A request body written anew (top-level.ts), kept as the pieces it is made
// of until it is sent: new text, and views of the client's own bytes.
//
// Every large buffer the gateway allocates counts toward the engine's
// allowance between two garbage collections (about 8 MB under the heap
// hint), so a second copy of each 400 KB body doubled the collections and
// cost a rewritten agent body half again its CPU (README, benchmark). The
// pieces are therefore put together in one buffer that every request reuses,
// at the moment they are sent: fetch takes its own copy of a body when it is
// called (the Fetch standard: "a copy of the bytes"), so the buffer is free
// again before the call returns. Pure apart from that buffer.

/** Above this size a body gets a buffer of its own rather than grow the shared one for ever. */
export const SHARED_MAX_BYTES = 4 * 1024 * 1024;

let shared = new Uint8Array(0);

export class SplicedBody {
  readonly byteLength: number;

  constructor(private readonly parts: readonly Uint8Array[]) {
    let n = 0;
    for (const p of parts) n += p.byteLength;
    this.byteLength = n;
  }

  /** The bytes, in a buffer of their own. */
  bytes(): Uint8Array {
    return this.writeInto(new Uint8Array(this.byteLength));
  }

  /**
   * The bytes in the buffer shared by every request, valid only until the
   * next call: for a caller that hands them at once, in the same
   * synchronous step, to something that copies them (fetch). A body larger
   * than SHARED_MAX_BYTES gets a buffer of its own.
   */
  lend(): Uint8Array {
    if (this.byteLength > SHARED_MAX_BYTES) return this.bytes();
    if (shared.byteLength < this.byteLength) {
      shared = new Uint8Array(
        Math.min(SHARED_MAX_BYTES, Math.max(this.byteLength, shared.byteLength * 2)),
      );
    }
    return this.writeInto(shared);
  }

  private writeInto(out: Uint8Array): Uint8Array {
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out.subarray(0, this.byteLength);
  }
}
