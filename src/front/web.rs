//! The browser entry point (wasm32): the same app, sampling and gallery only. Compute runs on
//! WebGPU through Burn's wgpu backend when the browser has it, else on Burn's CPU backend
//! compiled to WebAssembly, with a visible notice. Rendering uses WebGL2. The page (index.html)
//! loads one of two builds of this crate: the full one (WebGPU and CPU) where the browser has
//! a hardware WebGPU adapter, else the CPU-only one (no `wgpu` feature: no CubeCL, wgpu, naga).
//!
//! Nothing is embedded: the page fetches manifest.json, draws the UI, then fetches each model
//! file (a line per file in #files: size and time, or what went wrong); the gallery of a data
//! set starts once its files have arrived or failed, without the failed ones.

use std::sync::Arc;

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::front::app::{AppOptions, Page, StudioApp, Tab};
use crate::jobs::studio::Session;

#[wasm_bindgen(inline_js = r#"
export async function fetch_file(name) {
  let r;
  try { r = await fetch(name); } catch (e) { throw new Error("the request failed (" + e.message + ")"); }
  if (!r.ok) throw new Error("HTTP " + r.status + " " + r.statusText);
  // the length on the wire is the file's only when the server did not compress it
  const enc = r.headers.get("content-encoding");
  const len = enc && enc !== "identity" ? null : r.headers.get("content-length");
  let b;
  try { b = new Uint8Array(await r.arrayBuffer()); } catch (e) { throw new Error("the download broke off (" + e.message + ")"); }
  if (len !== null && Number(len) !== b.length) throw new Error("truncated download (" + b.length + " of " + len + " bytes)");
  return b;
}
// "" without WebGPU, else "software: ..." or "hardware: ..." (vendor, architecture)
export async function gpu_adapter() {
  if (!navigator.gpu) return "";
  let a = null;
  try { a = await navigator.gpu.requestAdapter(); } catch (e) { return "none: " + e.message; }
  if (!a) return "none: no adapter";
  const i = a.info || {};
  const what = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(" ");
  const soft = a.isFallbackAdapter || i.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software|cpu/i.test(what);
  return (soft ? "software: " : "hardware: ") + (what || "unnamed adapter");
}
"#)]
extern "C" {
    /// The bytes of a file next to the page (a Uint8Array); rejects with what went wrong.
    fn fetch_file(name: &str) -> js_sys::Promise;
    fn gpu_adapter() -> js_sys::Promise;
}

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

/// Seconds since the page started loading (performance.now()).
fn page_seconds() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now() / 1000.0)
        .unwrap_or(0.0)
}

/// Text in the page's #status element (errors, readiness, timings).
fn set_status(text: &str, error: bool) {
    if let Some(el) = document().and_then(|d| d.get_element_by_id("status")) {
        el.set_text_content(Some(text));
        let _ = el.set_attribute("class", if error { "error" } else { "ok" });
    }
    if error {
        web_sys::console::error_1(&JsValue::from_str(text));
    }
}

/// An attribute on <body> for the page's test (e.g. data-first-row="1.23").
fn mark(name: &str, value: &str) {
    if let Some(b) = document().and_then(|d| d.body()) {
        let _ = b.set_attribute(name, value);
    }
}

/// Tell the page (and its test) that the gallery is drawn.
fn mark_gallery_drawn(seconds: f64) {
    if let Some(d) = document() {
        d.set_title("tract-studio: gallery drawn");
    }
    mark("data-gallery", &format!("{seconds:.2}"));
    set_status(&format!("gallery drawn {seconds:.1} s after start"), false);
}

/// The page as the app sees it: its status line, its clock and the markers its test reads.
struct WebPage;

impl Page for WebPage {
    fn seconds(&self) -> f64 {
        page_seconds()
    }
    fn mark(&self, name: &str, value: &str) {
        mark(name, value)
    }
    fn status(&self, text: &str, error: bool) {
        set_status(text, error)
    }
    fn gallery_drawn(&self, seconds: f64) {
        mark_gallery_drawn(seconds)
    }
    fn log(&self, line: &str) {
        web_sys::console::log_1(&JsValue::from_str(line));
    }
}

/// One line per model file in #files (`state` is its class: fetching, ok, error).
fn file_line(name: &str, text: &str, state: &str) {
    let Some(d) = document() else { return };
    let Some(list) = d.get_element_by_id("files") else {
        return;
    };
    let id = format!("file-{name}");
    let el = match d.get_element_by_id(&id) {
        Some(el) => el,
        None => {
            let Ok(el) = d.create_element("div") else {
                return;
            };
            el.set_id(&id);
            let _ = list.append_child(&el);
            el
        }
    };
    el.set_text_content(Some(text));
    let _ = el.set_attribute("class", state);
}

fn mb(n: usize) -> String {
    format!("{:.2} MB", n as f64 / 1e6)
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// GET a file next to the page; errors name the file and say what went wrong.
async fn fetch_bytes(name: &str) -> Result<Vec<u8>, String> {
    let v = JsFuture::from(fetch_file(name))
        .await
        .map_err(|e| format!("{name}: {}", js_err(e)))?;
    Ok(js_sys::Uint8Array::new(&v).to_vec())
}

/// Fetch one model file, check that it parses as a model, and hand it to `assets`. `shown`: the
/// file is one of the gallery's on screen (its arrival is what the first row waits for).
async fn fetch_model(name: String, shown: bool) {
    file_line(&name, &format!("{name}: fetching..."), "fetching");
    let t = page_seconds();
    let got = match fetch_bytes(&name).await {
        Ok(b) => match crate::engine::checkpoint::ModelFile::from_bytes(&name, &b) {
            Ok(_) => Ok(b),
            Err(e) => Err(format!(
                "{name}: {} bytes, not a usable model (truncated or corrupt?): {e}",
                b.len()
            )),
        },
        Err(e) => Err(e),
    };
    match &got {
        Ok(b) => {
            file_line(
                &name,
                &format!("{name}: {} in {:.2} s", mb(b.len()), page_seconds() - t),
                "ok",
            );
            // the page time the last of the shown gallery's files arrived (the test measures
            // the first row from it)
            if shown {
                mark("data-models-at", &format!("{:.3}", page_seconds()));
            }
        }
        Err(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("model file not loaded: {e}")));
            file_line(&name, &format!("not loaded: {e}"), "error");
        }
    }
    crate::jobs::assets::insert(&name, got);
}

/// WebGPU when the browser has a hardware adapter; a software one (SwiftShader, lavapipe) is
/// treated as none, as on the desktop: Burn's CPU backend is faster than a CPU emulating a GPU.
async fn pick_device() -> (Device, String) {
    let adapter = JsFuture::from(gpu_adapter())
        .await
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    let cpu = "sampling on the CPU (WebAssembly)";
    if adapter.is_empty() {
        return (Device::flex(), format!("no WebGPU in this browser: {cpu}"));
    }
    if let Some(what) = adapter.strip_prefix("software: ") {
        return (
            Device::flex(),
            format!("WebGPU adapter is software ({what}): {cpu}"),
        );
    }
    if let Some(why) = adapter.strip_prefix("none: ") {
        return (Device::flex(), format!("WebGPU unavailable ({why}): {cpu}"));
    }
    let hardware = adapter.trim_start_matches("hardware: ");
    #[cfg(feature = "wgpu")]
    return match Device::wgpu_options().init_async().await {
        Ok(d) => (d, format!("WebGPU ({hardware})")),
        Err(e) => (Device::flex(), format!("WebGPU unavailable ({e}): {cpu}")),
    };
    // the page loads this module where WebGPU is missing or software, or when asked to
    #[cfg(not(feature = "wgpu"))]
    (
        Device::flex(),
        format!(
            "the CPU-only module was asked for (?module=cpu), so WebGPU ({hardware}) is not used: {cpu}"
        ),
    )
}

/// For the page's gallery workers (web/worker.js, which load the CPU-only build): `n`
/// samples of the shipped model file `name` (its bytes) at `steps` DDIM steps from the noise
/// of `seed`, on the CPU backend: what the page's own thread computes for a gallery cell.
#[wasm_bindgen]
pub async fn sample_cell(
    name: String,
    bytes: Vec<u8>,
    seed: f64,
    n: usize,
    steps: usize,
) -> Result<Vec<f32>, JsValue> {
    use crate::engine::diffusion::Solver;
    use crate::engine::schedule::Param;
    use crate::jobs::generate::{Model, noise};
    let err = |e: crate::Error| JsValue::from_str(&e.to_string());
    if crate::jobs::assets::bytes(&name).is_none() {
        crate::jobs::assets::insert(&name, Ok(bytes));
    }
    let device = Device::flex();
    let model =
        Model::load(&format!("asset:{name}"), Param::Vp, Some(1024), &device).map_err(err)?;
    let z = noise(seed as u64, n, model.dim());
    let (s, _) = model
        .sample_traced_async(&z, steps, Solver::Ddim, 0, &device)
        .await
        .map_err(err)?;
    Ok(s)
}

#[wasm_bindgen(start)]
pub fn main_js() {
    // a gallery worker (no window) only samples (`sample_cell`)
    if web_sys::window().is_none() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        set_status(&format!("internal error: {info}"), true)
    }));
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = start().await {
            set_status(&format!("could not start: {e:?}"), true);
        }
    });
}

/// The query parameter `key` (`?data=fashion-mnist&seed=3`).
fn query(key: &str) -> Option<String> {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|q| {
            q.trim_start_matches('?').split('&').find_map(|kv| {
                kv.strip_prefix(key)
                    .and_then(|r| r.strip_prefix('='))
                    .map(|v| v.to_string())
            })
        })
}

async fn start() -> Result<(), JsValue> {
    let (device, notice) = pick_device().await;
    if crate::engine::kernels::is_flex(&device) {
        crate::jobs::studio::page::warm_up();
    }
    web_sys::console::log_1(&JsValue::from_str(&format!(
        "tract-studio compute: {notice}"
    )));
    // the manifest first (a few hundred bytes): the UI lists the models from it
    let manifest = match fetch_bytes("manifest.json").await {
        Ok(b) => crate::jobs::assets::set_manifest(&String::from_utf8_lossy(&b))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => {
            file_line("manifest.json", &format!("not loaded: {e}"), "error");
            web_sys::console::warn_1(&JsValue::from_str(&e));
            vec![]
        }
    };
    set_status(&format!("compute: {notice}; sampling..."), false);
    let canvas = document()
        .and_then(|d| d.get_element_by_id("tract_canvas"))
        .ok_or("no #tract_canvas element")?
        .dyn_into::<web_sys::HtmlCanvasElement>()?;
    // ?data=NAME opens the gallery on another shipped data set (e.g. fashion-mnist)
    let data = query("data").filter(|d| manifest.iter().any(|e| &e.data == d));
    // ?set=NAME: one of its sets of models (e.g. diffusers: a diffusers teacher's)
    let current = data.clone().unwrap_or_else(|| "toy:ring8".into());
    // (without one: the data's first set, as the app takes it; e.g. emoji has only diffusers)
    let set = query("set")
        .filter(|s| manifest.iter().any(|e| e.is_in(&current, Some(s))))
        .or_else(|| crate::jobs::assets::default_set(&manifest, &current));
    // the current gallery's files first, then the rest
    let mut names: Vec<(bool, String)> = manifest
        .iter()
        .map(|e| {
            (
                !e.is_in(&current, set.as_deref()),
                e.path.trim_start_matches("asset:").to_string(),
            )
        })
        .collect();
    names.sort_by_key(|n| n.0);
    let opts = AppOptions {
        tab: Some(Tab::Gallery),
        web: true,
        notice: Some(notice),
        data,
        set,
        seed: query("seed").and_then(|s| s.parse().ok()),
        ..Default::default()
    };
    let web_options = eframe::WebOptions {
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    let (ctx_tx, ctx_rx) = std::sync::mpsc::channel::<eframe::egui::Context>();
    eframe::WebRunner::new()
        .start(
            canvas,
            web_options,
            Box::new(move |cc| {
                let ctx = cc.egui_ctx.clone();
                let _ = ctx_tx.send(ctx.clone());
                let session = Session::new(device, Arc::new(move || ctx.request_repaint()));
                Ok(Box::new(
                    StudioApp::new(session, opts).with_page(Box::new(WebPage)),
                ))
            }),
        )
        .await?;
    // the UI is up: now the model files, each repainting the app when it arrives
    let ctx = ctx_rx.try_recv().ok();
    for (elsewhere, name) in names {
        let ctx = ctx.clone();
        wasm_bindgen_futures::spawn_local(async move {
            fetch_model(name, !elsewhere).await;
            if let Some(c) = ctx {
                c.request_repaint();
            }
        });
    }
    Ok(())
}
