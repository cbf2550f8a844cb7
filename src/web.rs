//! The browser entry point (wasm32): the same app, sampling and gallery only. Compute runs on
//! WebGPU through Burn's wgpu backend when the browser has it, else on Burn's CPU backend
//! compiled to WebAssembly, with a visible notice. Rendering uses WebGL2.

use std::sync::Arc;

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::app::{AppOptions, StudioApp, Tab};
use crate::studio::Session;

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

/// Text in the page's #status element (errors, readiness, timings).
pub fn set_status(text: &str, error: bool) {
    if let Some(el) = document().and_then(|d| d.get_element_by_id("status")) {
        el.set_text_content(Some(text));
        let _ = el.set_attribute("class", if error { "error" } else { "ok" });
    }
    if error {
        web_sys::console::error_1(&JsValue::from_str(text));
    }
}

/// Tell the page (and its test) that the gallery is drawn.
pub fn mark_gallery_drawn(seconds: f64) {
    if let Some(d) = document() {
        d.set_title("tract-studio: gallery drawn");
        if let Some(b) = d.body() {
            let _ = b.set_attribute("data-gallery", &format!("{seconds:.2}"));
        }
    }
    set_status(&format!("gallery drawn {seconds:.1} s after start"), false);
}

async fn pick_device() -> (Device, String) {
    let has_gpu = web_sys::window()
        .map(|w| {
            let nav = w.navigator();
            js_sys::Reflect::get(&nav, &JsValue::from_str("gpu"))
                .map(|g| !g.is_undefined() && !g.is_null())
                .unwrap_or(false)
        })
        .unwrap_or(false);
    if has_gpu {
        match Device::wgpu_options().init_async().await {
            Ok(d) => return (d, "WebGPU".to_string()),
            Err(e) => {
                return (
                    Device::flex(),
                    format!("WebGPU unavailable ({e}): sampling on the CPU (WebAssembly)"),
                );
            }
        }
    }
    (
        Device::flex(),
        "no WebGPU in this browser: sampling on the CPU (WebAssembly)".to_string(),
    )
}

#[wasm_bindgen(start)]
pub fn main_js() {
    std::panic::set_hook(Box::new(|info| {
        set_status(&format!("internal error: {info}"), true)
    }));
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = start().await {
            set_status(&format!("could not start: {e:?}"), true);
        }
    });
}

async fn start() -> Result<(), JsValue> {
    let (device, notice) = pick_device().await;
    web_sys::console::log_1(&JsValue::from_str(&format!(
        "tract-studio compute: {notice}"
    )));
    set_status(&format!("compute: {notice}; sampling..."), false);
    let canvas = document()
        .and_then(|d| d.get_element_by_id("tract_canvas"))
        .ok_or("no #tract_canvas element")?
        .dyn_into::<web_sys::HtmlCanvasElement>()?;
    // ?data=NAME opens the gallery on another shipped data set (e.g. fashion-mnist)
    let data = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|q| {
            q.trim_start_matches('?')
                .split('&')
                .find_map(|kv| kv.strip_prefix("data=").map(|v| v.to_string()))
        })
        .filter(|d| crate::assets::manifest().iter().any(|e| &e.data == d));
    let opts = AppOptions {
        tab: Some(Tab::Gallery),
        web: true,
        notice: Some(notice),
        data,
        ..Default::default()
    };
    let web_options = eframe::WebOptions {
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::WebRunner::new()
        .start(
            canvas,
            web_options,
            Box::new(move |cc| {
                let ctx = cc.egui_ctx.clone();
                let session = Session::new(device, Arc::new(move || ctx.request_repaint()));
                Ok(Box::new(StudioApp::new(session, opts)))
            }),
        )
        .await
}
