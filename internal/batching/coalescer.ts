/**
 * Collects requests while `parallel` calls are in flight and runs everything that queued up as the
 * next call: no added latency when idle, one round trip for many requests under load.
 * Each request's `weight` counts toward `maxWeight` per call.
 */
export class Coalescer<Req, Res> {
  private queue: { req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }[] = [];
  private running = 0;

  constructor(
    private readonly run: (reqs: Req[]) => Promise<Res[]>,
    private readonly options: { parallel: number; maxWeight: number; weight: (r: Req) => number },
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.options.parallel && this.queue.length > 0) {
      let weight = 0;
      let n = 0;
      while (n < this.queue.length && (n === 0 || weight + this.options.weight(this.queue[n]!.req) <= this.options.maxWeight)) {
        weight += this.options.weight(this.queue[n]!.req);
        n++;
      }
      const taken = this.queue.splice(0, n);
      this.running++;
      this.run(taken.map((t) => t.req)).then(
        (results) => taken.forEach((t, i) => t.resolve(results[i]!)),
        (error: unknown) => taken.forEach((t) => t.reject(error)),
      ).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }
}

