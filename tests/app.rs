//! App state tests without a window: the UI is built headless with egui's own context
//! and the app's state is checked after each interaction.
#![cfg(feature = "gui")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use tract_studio::app::{AppOptions, RunStatus, StudioApp, Tab};
use tract_studio::studio::Session;

fn app() -> StudioApp {
    let session = Session::new(burn::tensor::Device::flex(), Arc::new(|| {}));
    StudioApp::new(
        session,
        AppOptions {
            assets: Some("/nonexistent/manifest.json".into()),
            ..Default::default()
        },
    )
}

/// Build one frame; return all text the frame painted.
fn frame(app: &mut StudioApp, ctx: &egui::Context) -> String {
    let out = ctx.run_ui(egui::RawInput::default(), |ui| app.show(ui));
    let mut text = String::new();
    for s in &out.shapes {
        collect_text(&s.shape, &mut text);
    }
    text
}

fn collect_text(s: &egui::epaint::Shape, out: &mut String) {
    match s {
        egui::epaint::Shape::Text(t) => {
            out.push_str(t.galley.text());
            out.push('\n');
        }
        egui::epaint::Shape::Vec(v) => v.iter().for_each(|s| collect_text(s, out)),
        _ => {}
    }
}

fn wait(
    app: &mut StudioApp,
    ctx: &egui::Context,
    secs: f64,
    mut done: impl FnMut(&StudioApp) -> bool,
) -> bool {
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        frame(app, ctx);
        if done(app) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn invalid_schedule_shows_error_and_disables_start() {
    let ctx = egui::Context::default();
    let mut a = app();
    a.tab = Tab::Distill;
    assert!(a.can_start());
    a.schedule_text = "1024,33,1".into();
    let text = frame(&mut a, &ctx);
    assert!(!a.can_start());
    assert!(
        text.contains("33 does not divide 1024"),
        "painted text:\n{text}"
    );
    a.start(); // the button's action does nothing while the schedule is invalid
    assert_eq!(a.status, RunStatus::Idle);
    a.tab = Tab::Schedule;
    let text = frame(&mut a, &ctx);
    assert!(text.contains("invalid distillation schedule"));
    a.schedule_text = "1024,32,1".into();
    let text = frame(&mut a, &ctx);
    assert!(a.can_start());
    assert!(
        text.contains("tract-1024to32") && text.contains("tract-32to1"),
        "{text}"
    );
}

#[test]
fn start_then_cancel_returns_to_idle_within_a_second() {
    let ctx = egui::Context::default();
    let mut a = app();
    a.tab = Tab::Distill;
    a.fit_samples = 20_000;
    a.train_samples = 10_000_000;
    a.schedule_text = "64,8,1".into();
    a.start();
    assert_eq!(a.status, RunStatus::Running);
    assert!(
        wait(&mut a, &ctx, 60.0, |a| a.losses.len() > 20),
        "no progress: {:?}",
        a.errors
    );
    let t = Instant::now();
    a.cancel();
    assert!(
        wait(&mut a, &ctx, 5.0, |a| a.status == RunStatus::Idle),
        "still {:?}",
        a.status
    );
    let secs = t.elapsed().as_secs_f64();
    eprintln!("cancel took {secs:.3}s");
    assert!(secs < 1.0, "cancel took {secs}s");
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    let dir = a.run_dir.clone().unwrap();
    assert!(
        dir.join("state.safetensors").exists(),
        "a cancelled run keeps its checkpoint"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gallery_rows_match_chosen_steps() {
    let ctx = egui::Context::default();
    let mut a = app();
    a.tab = Tab::Gallery;
    for c in &mut a.step_choices {
        c.1 = c.0 == 1 || c.0 == 4 || c.0 == 32;
    }
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 60.0, |a| !a.gallery_busy),
        "{:?}",
        a.errors
    );
    let (_, cells) = a.gallery.clone().expect("gallery");
    let mut steps: Vec<usize> = cells.iter().map(|c| c.steps).collect();
    steps.dedup();
    assert_eq!(steps, vec![1, 4, 32]);
    let text = frame(&mut a, &ctx);
    assert!(
        text.contains("4 steps") && text.contains("32 steps") && text.contains("1 step"),
        "{text}"
    );
    // the exact teacher gets better with steps
    assert!(cells[2].rmse_to_teacher < cells[0].rmse_to_teacher);
}
