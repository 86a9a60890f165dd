/** murmur3 x86 32-bit of a UTF-16 string's code units (fast, well mixed; not cryptographic). */
export function murmur3(text: string, seed = 0x9747b28c): number {
  let h = seed >>> 0;
  const length = text.length;
  let i = 0;
  for (; i + 1 < length; i += 2) {
    let k = (text.charCodeAt(i) & 0xffff) | ((text.charCodeAt(i + 1) & 0xffff) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  if (i < length) {
    let k = text.charCodeAt(i) & 0xffff;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest random weight) placement: a key belongs to the member with the highest
 * hash of (member, key). Every node computes the same owner from the same member set; when a
 * member joins or leaves, only the keys it wins or held move (1/N of them in expectation).
 */
export class Rendezvous {
  readonly members: readonly string[];
  private readonly seeds: number[];

  constructor(members: Iterable<string>) {
    this.members = [...new Set(members)].sort();
    this.seeds = this.members.map((m) => murmur3(m));
  }

  /** The owner of `key`, or undefined when there are no members. */
  owner(key: string): string | undefined {
    let best: string | undefined;
    let bestScore = -1;
    for (let i = 0; i < this.members.length; i++) {
      const score = murmur3(key, this.seeds[i]);
      if (score > bestScore || (score === bestScore && this.members[i]! < best!)) {
        bestScore = score;
        best = this.members[i];
      }
    }
    return best;
  }
}
