//! The session behind every interactive front end (desktop app, browser): commands go in,
//! updates come out on a channel, work runs on background threads. No GUI types here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use burn::tensor::Device;

use crate::engine::data::Data;
use crate::engine::diffusion::Solver;
use crate::engine::distill::{DistillConfig, Event};
#[cfg(not(target_arch = "wasm32"))]
use crate::engine::distill::{Outcome, PreviewSpec, Run};
use crate::engine::eval::metrics;
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};

/// A model in the gallery: a label and a spec (`exact:DATA` or a model file), and the most
/// steps to sample it at (none: its own step count, the whole grid for a teacher; the
/// manifest's `max_steps`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelRef {
    pub label: String,
    pub spec: String,
    pub max_steps: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum Command {
    /// Samples of the data itself, for the data panel.
    PreviewData { data: String, n: usize },
    /// Start (or resume) a distillation run in `dir`.
    Distill {
        cfg: Box<DistillConfig>,
        dir: PathBuf,
        resume: bool,
    },
    /// Sample every model at every step count from the same noise, with metrics.
    /// `tag` says where the result goes (e.g. "gallery", "teacher").
    Gallery {
        tag: String,
        data: String,
        models: Vec<ModelRef>,
        steps: Vec<usize>,
        n: usize,
        seed: u64,
        paths: usize,
    },
}

#[derive(Clone, Debug)]
pub struct GalleryCell {
    pub model: String,
    pub steps: usize,
    pub samples: Vec<f32>,
    /// Trajectories of the first few noise vectors: per step, [paths, dim].
    pub path: Vec<Vec<f32>>,
    pub sw2: f64,
    /// Mixtures: RMSE to the exact 1024-step teacher. Images: PSNR (dB) to the reference row.
    pub rmse_to_teacher: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug)]
pub enum Update {
    DataPreview {
        data: String,
        /// one sample's shape: `[D]` for points, `[C, H, W]` for images
        shape: Vec<usize>,
        points: Vec<f32>,
    },
    Distill(Event),
    Finished {
        student: PathBuf,
    },
    Stopped {
        dir: PathBuf,
    },
    /// One cell of a running gallery, as soon as it is computed (cheapest first); its
    /// metrics may be missing (NaN) until the final `Gallery`.
    GalleryCell {
        tag: String,
        shape: Vec<usize>,
        cell: GalleryCell,
    },
    /// The whole gallery, with metrics, in display order.
    Gallery {
        tag: String,
        shape: Vec<usize>,
        cells: Vec<GalleryCell>,
        reference_steps: usize,
    },
    Error(String),
}

/// Owns the channel and the stop flag of the running job.
pub struct Session {
    tx: Sender<Update>,
    pub rx: Receiver<Update>,
    stop: Arc<AtomicBool>,
    /// The newest "gallery" job: an older one stops at its next cell, its updates dropped.
    gallery_gen: Arc<AtomicU64>,
    device: Device,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Session {
    /// `notify` is called after every update (e.g. to request a repaint).
    pub fn new(device: Device, notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = channel();
        Session {
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
            gallery_gen: Arc::new(AtomicU64::new(0)),
            device,
            notify,
        }
    }

    /// A "gallery" job replaces the running one: a liveness check for the job `cmd` starts
    /// (always true for other jobs).
    fn liveness(&self, cmd: &Command) -> impl Fn() -> bool + Send + 'static {
        let gen_now = self.gallery_gen.clone();
        let mine = match cmd {
            Command::Gallery { tag, .. } if tag == "gallery" => {
                Some(gen_now.fetch_add(1, Ordering::SeqCst) + 1)
            }
            _ => None,
        };
        move || mine.is_none_or(|m| gen_now.load(Ordering::SeqCst) == m)
    }

    /// Ask the running distillation to stop at its next step (it checkpoints first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// In the browser: jobs run as tasks on the main thread, with asynchronous reads.
    #[cfg(target_arch = "wasm32")]
    pub fn send(&mut self, cmd: Command) {
        let (tx, device, notify) = (self.tx.clone(), self.device.clone(), self.notify.clone());
        let live = self.liveness(&cmd);
        wasm_bindgen_futures::spawn_local(async move {
            let emit = |u: Update| {
                if live() {
                    let _ = tx.send(u);
                    notify();
                }
            };
            let u = match run_command_async(cmd, &device, &emit, &live).await {
                Ok(u) => u,
                Err(e) => Update::Error(e.to_string()),
            };
            emit(u);
        });
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn send(&mut self, cmd: Command) {
        let (tx, device, notify) = (self.tx.clone(), self.device.clone(), self.notify.clone());
        if matches!(cmd, Command::Distill { .. }) {
            self.stop = Arc::new(AtomicBool::new(false));
        }
        let stop = self.stop.clone();
        let live = self.liveness(&cmd);
        std::thread::spawn(move || {
            let send = |u: Update| {
                if live() {
                    let _ = tx.send(u);
                    notify();
                }
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_command(cmd, &device, &stop, &send, &live)
            }));
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => send(Update::Error(e.to_string())),
                Err(_) => send(Update::Error(
                    "internal error in a background job (see the terminal)".into(),
                )),
            }
        });
    }
}

/// The app's observer: every step's loss shown as it comes, a stop honoured at the next step
/// (one loss read a step, which an interactive run can afford).
#[cfg(not(target_arch = "wasm32"))]
struct Interactive<'a> {
    send: &'a dyn Fn(Update),
    stop: &'a AtomicBool,
}

#[cfg(not(target_arch = "wasm32"))]
impl crate::engine::distill::Observer for Interactive<'_> {
    fn event(&mut self, e: &Event) -> bool {
        (self.send)(Update::Distill(e.clone()));
        !self.stop.load(Ordering::SeqCst)
    }
    fn loss_every(&self) -> u64 {
        1
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn run_command(
    cmd: Command,
    device: &Device,
    stop: &AtomicBool,
    send: &dyn Fn(Update),
    live: &dyn Fn() -> bool,
) -> crate::Result<()> {
    match cmd {
        Command::PreviewData { data, n } => send(preview_data(data, n)?),
        Command::Distill { cfg, dir, resume } => {
            let mut run = if resume {
                Run::open(&dir, device)?
            } else {
                Run::new(*cfg, &dir, device)?
            };
            let d = Data::parse(&run.cfg.data)?;
            let n = if d.is_images() { 16 } else { 1024 };
            run.preview = Some(PreviewSpec {
                every: 50,
                noise: noise(7, n, d.dim()),
            });
            let mut obs = Interactive { send, stop };
            match run.run(resume, &mut obs, None)? {
                Outcome::Finished { student } => send(Update::Finished { student }),
                Outcome::Stopped { .. } => send(Update::Stopped { dir }),
            }
        }
        // a background thread may block on the reads
        Command::Gallery {
            tag,
            data,
            models,
            steps,
            n,
            seed,
            paths,
        } => send(burn::tensor::read_sync(gallery(
            tag, data, models, steps, n, seed, paths, device, send, live,
        ))?),
    }
    Ok(())
}

/// The browser's version of the jobs: no training, asynchronous reads.
#[cfg(target_arch = "wasm32")]
async fn run_command_async(
    cmd: Command,
    device: &Device,
    emit: &dyn Fn(Update),
    live: &dyn Fn() -> bool,
) -> crate::Result<Update> {
    match cmd {
        Command::PreviewData { data, n } => preview_data(data, n),
        Command::Distill { .. } => Err(crate::Error::input(
            "training is not available in the browser; use the desktop app or the command line",
        )),
        Command::Gallery {
            tag,
            data,
            models,
            steps,
            n,
            seed,
            paths,
        } => gallery(tag, data, models, steps, n, seed, paths, device, emit, live).await,
    }
}

fn preview_data(data: String, n: usize) -> crate::Result<Update> {
    let d = Data::parse(&data)?;
    // images: a grid's worth, not thousands
    let n = if d.is_images() { n.min(64) } else { n };
    let points = d.sample(
        &mut crate::engine::rng::Rng::stream(0, crate::engine::rng::purpose::EVAL_DATA),
        n,
    );
    Ok(Update::DataPreview {
        data,
        shape: d.shape(),
        points,
    })
}

/// Every model at every step count from the same noise, with metrics against the exact
/// teacher's 1024-step sample (mixtures), or, for images, PSNR to the first model's
/// largest-step cell (the teacher row when the teacher comes first; SW2 is NaN).
/// Cells are computed cheapest first (every 1-step cell, then 2 steps, ...) and each goes to
/// `emit` as soon as it is done; the result has them all in display order (per model, images
/// largest step count first). Reads are asynchronous (the browser's main thread must not
/// block), and the browser draws a frame between cells. When `live` turns false (a newer
/// gallery was asked for) it stops at the next cell.
#[allow(clippy::too_many_arguments)]
async fn gallery(
    tag: String,
    data: String,
    models: Vec<ModelRef>,
    steps: Vec<usize>,
    n: usize,
    seed: u64,
    paths: usize,
    device: &Device,
    emit: &dyn Fn(Update),
    live: &dyn Fn() -> bool,
) -> crate::Result<Update> {
    let loaded = models
        .iter()
        .map(|m| Model::load(&m.spec, Param::Vp, Some(1024), device))
        .collect::<crate::Result<Vec<_>>>()?;
    // images need no data set here (the browser has none): the shape comes from the models
    let first_shape = loaded
        .first()
        .ok_or_else(|| crate::Error::input("no models chosen for the gallery"))?
        .shape();
    let images = first_shape.len() == 3;
    let d = if images {
        None
    } else {
        Some(Data::parse(&data)?)
    };
    let shape = d.as_ref().map(|d| d.shape()).unwrap_or(first_shape);
    let dim: usize = shape.iter().product();
    let n = if images { n.min(16) } else { n };
    let z = noise(seed, n, dim);
    // mixtures: the exact teacher's 1024-step sample, with its paths and time, which is also
    // the exact teacher's 1024-step cell when the gallery has one (not sampled twice)
    let exact_spec = format!("exact:{data}");
    let reference = if images {
        None
    } else {
        let exact = Model::load(&exact_spec, Param::Vp, Some(1024), device)?;
        let t = web_time::Instant::now();
        let (s, p) = exact
            .sample_traced_async(&z, 1024, Solver::Ddim, paths, device)
            .await?;
        Some((s, p, t.elapsed().as_secs_f64()))
    };
    // (model, steps) in display order
    let mut jobs: Vec<(usize, usize)> = vec![];
    for (i, (m, model)) in models.iter().zip(&loaded).enumerate() {
        if model.dim() != dim {
            return Err(crate::Error::input(format!(
                "{} is for {}-dimensional data, {} is {dim}-dimensional",
                m.label,
                model.dim(),
                data,
            )));
        }
        // images: the largest step count first, so the first model's best row is the reference
        let most = model.gallery_steps(m.max_steps);
        let mut ks: Vec<usize> = steps.iter().map(|&k| k.min(most)).collect();
        ks.dedup();
        if images {
            ks.sort_by(|a, b| b.cmp(a));
        }
        jobs.extend(ks.into_iter().map(|k| (i, k)));
    }
    // computed cheapest first (a stable sort: models keep their order within a step count)
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| jobs[j].1);
    let mut done: Vec<Option<GalleryCell>> = vec![None; jobs.len()];
    // in the browser on the CPU, image cells go to the page's workers, all queued now in this
    // order (cheapest first) and run as many at a time as there are workers
    #[cfg(target_arch = "wasm32")]
    let mut queued = page::queue_cells(&tag, images, device, &models, &jobs, &order, seed, n);
    for j in order {
        if !live() {
            #[cfg(target_arch = "wasm32")]
            page::pool_cancel(&tag);
            return Err(crate::Error::input("replaced by a newer gallery"));
        }
        let (i, k) = jobs[j];
        let (m, model) = (&models[i], &loaded[i]);
        #[cfg(target_arch = "wasm32")]
        let from_worker = match queued.remove(&j) {
            Some(p) => page::cell_result(p).await,
            None => None,
        };
        #[cfg(not(target_arch = "wasm32"))]
        let from_worker: Option<(Vec<f32>, f64)> = None;
        let (s, path, seconds) = match (&reference, from_worker) {
            (Some(r), _) if m.spec == exact_spec && k == 1024 => r.clone(),
            (_, Some((s, secs))) => (s, vec![], secs),
            _ => {
                let t = web_time::Instant::now();
                let paths = if images { 0 } else { paths };
                let (s, p) = model
                    .sample_traced_async(&z, k, Solver::Ddim, paths, device)
                    .await?;
                (s, p, t.elapsed().as_secs_f64())
            }
        };
        // mixtures: metrics now (the reference is exact); images: once the reference row is done
        let (sw2, r) = match &d {
            None => (f64::NAN, f64::NAN),
            Some(d) => {
                let (sw2, _, r) = metrics(d, &s, reference.as_ref().map(|r| &r.0[..]), seed + 1);
                (sw2, r.unwrap_or(0.0))
            }
        };
        let cell = GalleryCell {
            model: m.label.clone(),
            steps: k,
            samples: s,
            path,
            sw2,
            rmse_to_teacher: r,
            seconds,
        };
        emit(Update::GalleryCell {
            tag: tag.clone(),
            shape: shape.clone(),
            cell: cell.clone(),
        });
        done[j] = Some(cell);
        let_the_page_draw().await;
    }
    let mut cells: Vec<GalleryCell> = done.into_iter().flatten().collect();
    if images && let Some(r) = cells.first().map(|c| c.samples.clone()) {
        for c in &mut cells {
            c.rmse_to_teacher = crate::engine::eval::psnr(&c.samples, &r);
        }
    }
    Ok(Update::Gallery {
        tag,
        shape,
        cells,
        reference_steps: 1024,
    })
}

/// In the browser, CPU sampling runs on the page's thread: give it a frame between cells.
async fn let_the_page_draw() {
    #[cfg(target_arch = "wasm32")]
    let _ = wasm_bindgen_futures::JsFuture::from(page::next_frame()).await;
}

#[cfg(target_arch = "wasm32")]
pub mod page {
    use std::collections::HashMap;

    use burn::tensor::Device;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;

    use super::ModelRef;

    #[wasm_bindgen(inline_js = r#"
export function next_frame() {
  return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 0))));
}
// gallery workers (web/worker.js): one per core, up to 4, made on first use; jobs run in the
// order they were queued. A worker that fails to start takes no more jobs (its job is
// rejected, and the page computes that cell itself).
let workers = null;
let idle = [];
let queue = [];
function pump() {
  while (idle.length && queue.length) {
    const w = idle.shift();
    const job = queue.shift();
    w.job = job;
    w.postMessage(job.msg);
  }
}
export function pool_ready() {
  if (workers === null) {
    workers = [];
    const k = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2));
    try {
      for (let i = 0; i < k; i++) {
        const w = new Worker(new URL("./worker.js", document.baseURI), { type: "module" });
        w.onmessage = (e) => {
          const job = w.job;
          w.job = null;
          idle.push(w);
          pump();
          if (!job) return;
          if (e.data.error) job.reject(new Error(e.data.error));
          else job.resolve(e.data);
        };
        w.onerror = (e) => {
          e.preventDefault();
          console.warn("gallery worker failed: " + (e.message || "could not start"));
          idle = idle.filter((x) => x !== w);
          workers = workers.filter((x) => x !== w);
          if (w.job) { w.job.reject(new Error("worker failed")); w.job = null; }
          if (workers.length === 0) { for (const j of queue) j.reject(new Error("no workers")); queue = []; }
        };
        workers.push(w);
        idle.push(w);
      }
    } catch (e) {
      console.warn("no gallery workers: " + e.message);
    }
  }
  return workers.length > 0;
}
export function pool_sample(tag, name, bytes, seed, n, steps) {
  // a copy: `bytes` is a view of the module's memory
  const msg = { name, bytes: bytes.slice(), seed, n, steps };
  return new Promise((resolve, reject) => { queue.push({ tag, msg, resolve, reject }); pump(); });
}
export function pool_cancel(tag) {
  for (const j of queue) if (j.tag === tag) j.reject(new Error("cancelled"));
  queue = queue.filter((j) => j.tag !== tag);
}
"#)]
    extern "C" {
        /// Resolves after the browser has drawn a frame (two animation frames, then a task).
        pub fn next_frame() -> js_sys::Promise;
        /// Starts the gallery workers if need be; false when the page has none.
        fn pool_ready() -> bool;
        /// A cell for the workers: resolves to {out: Float32Array, seconds}.
        fn pool_sample(
            tag: &str,
            name: &str,
            bytes: &[u8],
            seed: f64,
            n: usize,
            steps: usize,
        ) -> js_sys::Promise;
        /// Drops the cells of gallery `tag` that no worker has started.
        pub fn pool_cancel(tag: &str);
    }

    /// Start the gallery workers now (the page calls this when it computes on the CPU, so the
    /// workers load while the model files are fetched).
    pub fn warm_up() {
        let _ = pool_ready();
    }

    /// Queue the image cells of a CPU gallery for the workers (job index -> its promise): only
    /// for images on the CPU backend, every model a fetched `asset:` file, and workers running.
    #[allow(clippy::too_many_arguments)]
    pub fn queue_cells(
        tag: &str,
        images: bool,
        device: &Device,
        models: &[ModelRef],
        jobs: &[(usize, usize)],
        order: &[usize],
        seed: u64,
        n: usize,
    ) -> HashMap<usize, js_sys::Promise> {
        let files: Option<Vec<(&str, &'static [u8])>> = models
            .iter()
            .map(|m| {
                let name = m.spec.strip_prefix("asset:")?;
                Some((name, crate::jobs::assets::bytes(name)?))
            })
            .collect();
        let Some(files) =
            files.filter(|_| images && crate::engine::kernels::is_flex(device) && pool_ready())
        else {
            return HashMap::new();
        };
        order
            .iter()
            .map(|&j| {
                let (i, k) = jobs[j];
                let (name, bytes) = files[i];
                (j, pool_sample(tag, name, bytes, seed as f64, n, k))
            })
            .collect()
    }

    /// A worker's cell: (samples, seconds of compute), or None when it failed (then the page
    /// computes the cell itself).
    pub async fn cell_result(p: js_sys::Promise) -> Option<(Vec<f32>, f64)> {
        let v = wasm_bindgen_futures::JsFuture::from(p).await.ok()?;
        let out = js_sys::Reflect::get(&v, &"out".into())
            .ok()?
            .dyn_into::<js_sys::Float32Array>()
            .ok()?;
        let secs = js_sys::Reflect::get(&v, &"seconds".into()).ok()?.as_f64()?;
        Some((out.to_vec(), secs))
    }
}
