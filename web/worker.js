// A gallery worker: the CPU-only build of the app (no UI) sampling the image cells the page
// sends it (src/jobs/studio.rs, `page::pool_sample`), so a gallery uses every core instead of
// the page's one thread. Message in: {id, name, bytes, seed, n, steps}; out: {id, out
// (Float32Array), seconds} or {id, error}.
import init, { sample_cell } from "./tract_studio_cpu.js";

const ready = init();
self.onmessage = async (e) => {
  const { id, name, bytes, seed, n, steps } = e.data;
  try {
    await ready;
    const t0 = performance.now();
    const out = await sample_cell(name, bytes, seed, n, steps);
    self.postMessage({ id, out, seconds: (performance.now() - t0) / 1000 }, [out.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
};
