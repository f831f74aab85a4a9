// BullMQ's side of the benchmark suite (bench/README.md, "BullMQ").
//
//   node bench.mjs <scenario> --redis redis://127.0.0.1:PORT/2 [options]
//
// Prints one JSON line of figures (stderr gets anything else). Scenarios:
//   version                      {"node", "bullmq"}
//   enqueue-one  --jobs N        N `queue.add` calls, each awaited before the next
//   enqueue-bulk --jobs N        `queue.addBulk` of --batch (1,000) jobs a call
//       both: [--name noop] [--data JSON] [--priority P]; {"jobs", "seconds", "rate"}
//   probes --jobs N --rate R --kind K
//                                probe jobs sent one at a time on a fixed schedule
//                                (open loop), each with t0 taken just before its add
//   critical --jobs N --priority P --arrival one|bulk
//                                N probes of kind "c" sent now, one by one or in one
//                                addBulk; {"sent_at", "enqueue_s"}
//   worker --counter URL [--concurrency C]
//                                one Worker in this process until SIGTERM/SIGINT, then
//                                {"completed", "failed"}
//   serve                        reads one JSON object a line ({"scenario", options}),
//                                answers one JSON line each, on one warm connection
//
// The job bodies are those of bench/instrument/probes.py, on the counter database
// (db 0): "noop" INCRs the counter, "sleep" waits then INCRs, "probe" pushes
// "kind t0 started" to STARTED_KEY, and the worker's "completed" event (after BullMQ
// has moved the job to completed) pushes "kind t0 finished" to FINISHED_KEY. Times
// are seconds since the epoch, like Python's time.time().

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

// = bench/instrument/keys.py (tests/unit/test_bench_bullmq.py checks they agree).
const COUNTER_KEY = 'bench:counter';
const STARTED_KEY = 'bench:started';
const FINISHED_KEY = 'bench:finished';
const QUEUE = 'bench';
const BATCH = 1000;

const OPTIONS = {
  redis: { type: 'string' },
  counter: { type: 'string' },
  jobs: { type: 'string' },
  batch: { type: 'string' },
  name: { type: 'string' },
  data: { type: 'string' },
  priority: { type: 'string' },
  rate: { type: 'string' },
  kind: { type: 'string' },
  arrival: { type: 'string' },
  concurrency: { type: 'string' },
};

/** Seconds since the epoch, sub-millisecond (Date.now() has milliseconds only). */
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** ioredis options for a redis://host:port/db URL; BullMQ wants no per-request retries. */
function connection(url) {
  if (!url) throw new Error('--redis URL is required');
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

function integer(value, what, fallback) {
  if (value === undefined && fallback !== undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a whole number, not ${value}`);
  return n;
}

function jobOptions(opts) {
  return opts.priority === undefined ? {} : { priority: integer(opts.priority, '--priority') };
}

function data(opts) {
  return typeof opts.data === 'string' ? JSON.parse(opts.data) : opts.data || {};
}

async function enqueueOne(queue, opts) {
  const jobs = integer(opts.jobs, '--jobs');
  const name = opts.name || 'noop';
  const payload = data(opts);
  const options = jobOptions(opts);
  const started = performance.now();
  for (let i = 0; i < jobs; i++) await queue.add(name, payload, options);
  const seconds = (performance.now() - started) / 1000;
  return { jobs, seconds, rate: jobs / seconds };
}

async function enqueueBulk(queue, opts) {
  const jobs = integer(opts.jobs, '--jobs');
  const batch = integer(opts.batch, '--batch', BATCH);
  const job = { name: opts.name || 'noop', data: data(opts), opts: jobOptions(opts) };
  const started = performance.now();
  for (let start = 0; start < jobs; start += batch) {
    await queue.addBulk(Array.from({ length: Math.min(batch, jobs - start) }, () => job));
  }
  const seconds = (performance.now() - started) / 1000;
  return { jobs, seconds, rate: jobs / seconds };
}

/** Open loop, as bench/latency.py sends: fixed schedule, t0 just before each add. */
async function probes(queue, opts) {
  const jobs = integer(opts.jobs, '--jobs');
  const rate = Number(opts.rate);
  if (!(rate > 0)) throw new Error(`--rate must be above 0, not ${opts.rate}`);
  const kind = opts.kind || 'idle';
  const interval = 1000 / rate;
  const began = performance.now();
  let nextAt = began;
  for (let i = 0; i < jobs; i++) {
    // A Node timer may fire up to a millisecond early (libuv's loop clock counts
    // whole milliseconds), so wait again until the slot is really due.
    for (let pause = nextAt - performance.now(); pause > 0; pause = nextAt - performance.now()) {
      await sleep(pause);
    }
    await queue.add('probe', { t0: now(), kind });
    nextAt += interval;
  }
  const seconds = (performance.now() - began) / 1000;
  return { jobs, seconds, sent_rate: jobs / seconds };
}

/** bench/priority.py's CRITICAL arrival: one by one (awaited adds) or one addBulk. */
async function critical(queue, opts) {
  const jobs = integer(opts.jobs, '--jobs');
  const options = jobOptions(opts);
  const sentAt = now();
  const payload = { t0: sentAt, kind: 'c' };
  if (opts.arrival === 'one') {
    for (let i = 0; i < jobs; i++) await queue.add('probe', payload, options);
  } else if (opts.arrival === 'bulk') {
    await queue.addBulk(Array.from({ length: jobs }, () => ({ name: 'probe', data: payload, opts: options })));
  } else {
    throw new Error(`--arrival must be one or bulk, not ${opts.arrival}`);
  }
  return { jobs, sent_at: sentAt, enqueue_s: now() - sentAt };
}

const PRODUCERS = {
  'enqueue-one': enqueueOne,
  'enqueue-bulk': enqueueBulk,
  probes,
  critical,
};

function versions() {
  const require = createRequire(import.meta.url);
  return { node: process.version, bullmq: require('bullmq/package.json').version };
}

async function produce(scenario, opts) {
  const queue = new Queue(QUEUE, { connection: connection(opts.redis) });
  try {
    await queue.waitUntilReady();
    return await PRODUCERS[scenario](queue, opts);
  } finally {
    await queue.close();
  }
}

/** One JSON object a line in, one JSON line out, on one queue (one warm connection). */
async function serve(opts) {
  const queue = new Queue(QUEUE, { connection: connection(opts.redis) });
  await queue.waitUntilReady();
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    let reply;
    try {
      const command = JSON.parse(line);
      const producer = PRODUCERS[command.scenario];
      if (!producer) throw new Error(`unknown scenario ${command.scenario}`);
      reply = await producer(queue, command);
    } catch (error) {
      reply = { error: String(error && error.stack ? error.stack : error) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
  await queue.close();
  return null;
}

async function work(opts) {
  if (!opts.counter) throw new Error('--counter URL (the counter database) is required');
  const counter = new IORedis(connection(opts.counter));
  const fail = (error) => {
    console.error(error);
    process.exit(1);
  };
  const processor = async (job) => {
    switch (job.name) {
      case 'noop':
        await counter.incr(COUNTER_KEY);
        return;
      case 'sleep':
        await sleep(job.data.ms);
        await counter.incr(COUNTER_KEY);
        return;
      case 'probe':
        await counter.rpush(STARTED_KEY, `${job.data.kind} ${job.data.t0} ${now()}`);
        return;
      default:
        throw new Error(`no processor for job ${job.name}`);
    }
  };
  const worker = new Worker(QUEUE, processor, {
    connection: connection(opts.redis),
    concurrency: integer(opts.concurrency, '--concurrency', 1),
  });
  let completed = 0;
  let failed = 0;
  worker.on('completed', (job) => {
    completed++;
    if (job.name === 'probe') {
      counter.rpush(FINISHED_KEY, `${job.data.kind} ${job.data.t0} ${now()}`).catch(fail);
    }
  });
  worker.on('failed', (job, error) => {
    failed++;
    console.error(`job ${job && job.id} failed: ${error}`);
  });
  worker.on('error', (error) => console.error(`worker error: ${error}`));
  await new Promise((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await worker.close();
  await counter.quit();
  return { completed, failed, concurrency: worker.opts.concurrency };
}

async function main() {
  const [scenario, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({ args: rest, options: OPTIONS, strict: true });
  let result;
  if (scenario === 'version') result = versions();
  else if (scenario === 'serve') result = await serve(values);
  else if (scenario === 'worker') result = await work(values);
  else if (PRODUCERS[scenario]) result = await produce(scenario, values);
  else throw new Error(`unknown scenario ${scenario}; one of version, serve, worker, ${Object.keys(PRODUCERS).join(', ')}`);
  if (result) process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error && error.stack ? error.stack : error);
    process.exit(1);
  },
);
