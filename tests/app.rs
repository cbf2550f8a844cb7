//! App state tests without a window: the UI is built headless with egui's own context
//! and the app's state is checked after each interaction.
#![cfg(feature = "gui")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use tract_studio::app::{AppOptions, RunStatus, StudioApp, Tab};
use tract_studio::studio::Session;

/// A fresh folder for one test's runs (tests run in parallel; an unfinished run in a shared
/// folder would be offered for resuming to every app started after it).
fn runs_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("tract-app-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn app_in(runs: &std::path::Path) -> StudioApp {
    let session = Session::new(burn::tensor::Device::flex(), Arc::new(|| {}));
    StudioApp::new(
        session,
        AppOptions {
            assets: Some("/nonexistent/manifest.json".into()),
            runs_dir: Some(runs.to_path_buf()),
            ..Default::default()
        },
    )
}

fn app() -> StudioApp {
    app_in(&runs_dir())
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

/// Parks the job's thread inside the session's `notify` (called after every update, before the
/// distillation asks whether to go on) until released: the test sees the worker stopped at a
/// known step, whatever the machine's load.
#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<(bool, bool)>, // (hold the next update, a thread is held)
    cv: std::sync::Condvar,
}

impl Gate {
    fn notify(&self) {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            s.0 = false;
            s.1 = true;
            self.cv.notify_all();
            while s.1 {
                s = self.cv.wait(s).unwrap();
            }
        }
    }
    fn hold(&self) {
        self.state.lock().unwrap().0 = true;
    }
    fn held(&self) -> bool {
        self.state.lock().unwrap().1
    }
    fn release(&self) {
        self.state.lock().unwrap().1 = false;
        self.cv.notify_all();
    }
}

/// A cancel lands at the next optimizer step: the worker is parked right after an update,
/// the cancel is given, and the run stops with at most one more step (the one an update
/// other than a step's may precede), its checkpoint kept. Counted in steps, not seconds, so
/// a busy machine cannot fail it; the time it took is printed.
#[test]
fn start_then_cancel_stops_at_the_next_step() {
    let ctx = egui::Context::default();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let session = Session::new(burn::tensor::Device::flex(), Arc::new(move || g.notify()));
    let mut a = StudioApp::new(
        session,
        AppOptions {
            assets: Some("/nonexistent/manifest.json".into()),
            runs_dir: Some(runs_dir()),
            ..Default::default()
        },
    );
    a.tab = Tab::Distill;
    a.fit_samples = 20_000;
    a.train_samples = 10_000_000;
    a.schedule_text = "64,8,1".into();
    a.start();
    assert_eq!(a.status, RunStatus::Running);
    assert!(
        wait(&mut a, &ctx, 600.0, |a| a.losses.len() > 20),
        "no progress: {:?}",
        a.errors
    );
    gate.hold();
    let t = Instant::now();
    while !gate.held() {
        assert!(
            t.elapsed().as_secs() < 600,
            "the job never sent another update"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // the worker is parked: every update it sent is in the channel
    frame(&mut a, &ctx);
    let steps_at_cancel = a.losses.len();
    let t = Instant::now();
    a.cancel();
    gate.release();
    assert!(
        wait(&mut a, &ctx, 600.0, |a| a.status == RunStatus::Idle),
        "still {:?}",
        a.status
    );
    eprintln!(
        "cancel took {:.3}s, {} more step(s)",
        t.elapsed().as_secs_f64(),
        a.losses.len() - steps_at_cancel
    );
    assert!(
        a.losses.len() <= steps_at_cancel + 1,
        "the run went on for {} steps after the cancel",
        a.losses.len() - steps_at_cancel
    );
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

/// 16 images of 8x8 with labels, in MNIST format.
fn image_fixture(dir: &std::path::Path) {
    let mut px = vec![0u8; 16 * 64];
    for k in 0..16 {
        for y in (k % 4)..(k % 4) + 4 {
            for x in (k / 4)..(k / 4) + 4 {
                px[k * 64 + y * 8 + x] = 240;
            }
        }
    }
    tract_studio::data::idx::write_idx(
        &dir.join("train-images-idx3-ubyte"),
        &[16, 8, 8],
        &px,
        false,
    )
    .unwrap();
}

#[test]
fn image_data_teacher_trained_in_the_app_then_an_image_gallery() {
    let dir = tempfile::tempdir().unwrap();
    image_fixture(dir.path());
    let ctx = egui::Context::default();
    let mut a = app();
    let spec = format!("mnist:{}", dir.path().display());
    a.set_data(spec.clone());
    assert!(a.is_images() && !a.use_exact_teacher);
    assert!(
        a.models.iter().all(|m| !m.0.spec.starts_with("exact:")),
        "no exact teacher for images"
    );
    a.tab = Tab::Data;
    assert!(wait(&mut a, &ctx, 30.0, |a| a.data_preview.is_some()));
    let (_, shape, pts) = a.data_preview.clone().unwrap();
    assert_eq!(shape, vec![1, 8, 8]);
    assert_eq!(pts.len(), 64 * 64, "a grid of 64 images");
    let text = frame(&mut a, &ctx);
    assert!(text.contains("64 images shown, 1x8x8"), "{text}");
    // train a teacher from the Teacher panel's action
    a.teacher_samples = 64;
    a.batch = 8;
    a.runs_dir = dir.path().join("runs");
    a.start_teacher();
    assert_eq!(a.status, RunStatus::Running, "{:?}", a.errors);
    assert!(
        wait(&mut a, &ctx, 120.0, |a| a.status == RunStatus::Idle),
        "{:?}",
        a.errors
    );
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert!(
        a.teacher_file.ends_with("teacher.safetensors"),
        "{}",
        a.teacher_file
    );
    let teacher = std::path::PathBuf::from(&a.teacher_file);
    assert!(teacher.starts_with(dir.path()) && teacher.exists());
    // the gallery of the new teacher: images, the largest step count first as the reference
    a.models = vec![(
        tract_studio::studio::ModelRef {
            label: "teacher".into(),
            spec: teacher.display().to_string(),
            ..Default::default()
        },
        true,
    )];
    for c in &mut a.step_choices {
        c.1 = c.0 == 1 || c.0 == 32;
    }
    a.tab = Tab::Gallery;
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 60.0, |a| !a.gallery_busy),
        "{:?}",
        a.errors
    );
    let (shape, cells) = a.gallery.clone().expect("gallery");
    assert_eq!(shape, vec![1, 8, 8]);
    assert_eq!(
        cells.iter().map(|c| c.steps).collect::<Vec<_>>(),
        vec![32, 1]
    );
    assert_eq!(cells[0].samples.len(), 16 * 64, "16 images per cell");
    assert!(cells[1].rmse_to_teacher.is_finite() && cells[1].rmse_to_teacher < 150.0);
    let text = frame(&mut a, &ctx);
    assert!(
        text.contains("PSNR") && text.contains("reference row"),
        "{text}"
    );
}

#[test]
fn ve_from_the_app_schedule_panel_then_a_run() {
    use tract_studio::schedule::Param;
    let ctx = egui::Context::default();
    let mut a = app();
    a.tab = Tab::Schedule;
    let text = frame(&mut a, &ctx);
    assert!(text.contains("VP cosine log-SNR"), "painted text:\n{text}");
    a.set_param(Param::Ve);
    assert_eq!(a.schedule_text, "40,1", "the default schedule follows");
    let text = frame(&mut a, &ctx);
    assert!(
        text.contains("VE Karras noise levels"),
        "painted text:\n{text}"
    );
    // Heun: two evaluations per step, one on the last: 40 steps cost 79
    assert!(text.contains("Heun: 2 network evaluations"), "{text}");
    assert!(text.contains("its 40 steps cost 79 evaluations"), "{text}");
    assert_eq!(a.config().param, Param::Ve);
    // a VE run from the app: a short fit, then 40 -> 1
    let dir = tempfile::tempdir().unwrap();
    a.runs_dir = dir.path().to_path_buf();
    a.fit_samples = 4096;
    a.train_samples = 8192;
    a.batch = 256;
    a.tab = Tab::Distill;
    a.start();
    assert_eq!(a.status, RunStatus::Running, "{:?}", a.errors);
    assert!(
        wait(&mut a, &ctx, 300.0, |a| a.status == RunStatus::Idle),
        "the run did not finish: {:?}",
        a.errors
    );
    let student = a.last_student.clone().expect("a student");
    let m = tract_studio::checkpoint::ModelFile::load(&student).unwrap();
    assert_eq!(
        (m.meta.param, m.meta.steps, m.meta.grid_steps),
        (Param::Ve, 1, 40)
    );
}

#[test]
fn the_app_reports_to_the_page_it_is_given() {
    use std::sync::Mutex;
    use tract_studio::app::Page;
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);
    impl Page for Recorder {
        fn seconds(&self) -> f64 {
            1.5
        }
        fn mark(&self, name: &str, value: &str) {
            self.0.lock().unwrap().push(format!("mark {name}={value}"));
        }
        fn status(&self, text: &str, error: bool) {
            self.0
                .lock()
                .unwrap()
                .push(format!("status {text} {error}"));
        }
        fn gallery_drawn(&self, _seconds: f64) {
            self.0.lock().unwrap().push("drawn".into());
        }
        fn log(&self, line: &str) {
            self.0.lock().unwrap().push(format!("log {line}"));
        }
    }
    let ctx = egui::Context::default();
    let page = Recorder::default();
    let mut a = app().with_page(Box::new(page.clone()));
    a.apply(tract_studio::studio::Update::Error("bad".into()));
    a.report_to_page();
    assert!(
        page.0
            .lock()
            .unwrap()
            .contains(&"status error: bad true".to_string())
    );
    a.gallery_ready_at_frame = Some(0);
    for _ in 0..4 {
        frame(&mut a, &ctx);
    }
    a.report_to_page();
    a.report_to_page();
    let seen = page.0.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|l| *l == "drawn").count(), 1, "{seen:?}");
}

#[test]
fn a_run_cancelled_and_closed_is_resumed_at_the_next_start_and_ends_as_an_uninterrupted_one() {
    let ctx = egui::Context::default();
    let runs = runs_dir();
    let mut a = app_in(&runs);
    assert_eq!(
        a.status,
        RunStatus::Idle,
        "nothing to resume in a new folder"
    );
    a.tab = Tab::Distill;
    a.train_samples = 400_000;
    a.batch = 256;
    a.schedule_text = "64,8,1".into();
    let cfg = a.config();
    a.start();
    let dir = a.run_dir.clone().unwrap();
    assert!(
        wait(&mut a, &ctx, 60.0, |a| a.losses.len() > 30),
        "no progress: {:?}",
        a.errors
    );
    // cancel, then close the window (the app is dropped)
    a.cancel();
    assert!(wait(&mut a, &ctx, 5.0, |a| a.status == RunStatus::Idle));
    drop(a);
    assert!(dir.join("state.safetensors").exists());
    assert!(
        !dir.join("student.safetensors").exists(),
        "finished too soon"
    );

    // the next start finds the run and offers it; Resume runs it to its end
    let mut b = app_in(&runs);
    assert_eq!(b.status, RunStatus::Paused { dir: dir.clone() });
    assert!(
        b.log.iter().any(|l| l.contains("unfinished run")),
        "{:?}",
        b.log
    );
    b.start();
    assert!(
        wait(&mut b, &ctx, 300.0, |b| b.status == RunStatus::Idle),
        "still {:?}: {:?}",
        b.status,
        b.errors
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let resumed = std::fs::read(dir.join("student.safetensors")).expect("a final model");

    // the same options run without a stop, through the library
    let ref_dir = runs.join("uninterrupted");
    let dev = burn::tensor::Device::flex();
    let mut run = tract_studio::distill::Run::new(cfg, &ref_dir, &dev).unwrap();
    let mut go = |_: &tract_studio::distill::Event| true;
    let student = run.run_to_end(&mut go).unwrap();
    assert!(
        std::fs::read(student).unwrap() == resumed,
        "the resumed run's model differs from the uninterrupted run's"
    );
    // a finished run is not offered again
    let c = app_in(&runs);
    assert_eq!(c.status, RunStatus::Idle);
    let _ = std::fs::remove_dir_all(&runs);
}

/// What people type into the app's file fields, wrong: each gives an error in the app naming
/// the file, nothing panics, and no run starts on something else instead.
#[test]
fn bad_files_typed_into_the_app_give_errors_naming_them() {
    let ctx = egui::Context::default();
    let dir = runs_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let no_panic = |a: &StudioApp| {
        assert!(
            !a.errors.iter().any(|e| e.contains("internal error")),
            "{:?}",
            a.errors
        )
    };
    // a mixture file that is not there
    let mut a = app_in(&dir);
    let missing = dir.join("no-such-mixture.json");
    a.set_data(format!("gmm:{}", missing.display()));
    let name = missing.display().to_string();
    assert!(
        wait(&mut a, &ctx, 20.0, |a| a
            .errors
            .iter()
            .any(|e| e.contains(&name))),
        "{:?}",
        a.errors
    );
    assert!(a.data_error().is_some_and(|e| e.contains(&name)));
    assert!(
        !a.can_start(),
        "Start stays off while the data does not load"
    );
    a.start();
    assert_eq!(a.status, RunStatus::Idle, "no run on other data");
    no_panic(&a);

    // an image folder with a text file and a corrupt PNG in it
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    std::fs::write(imgs.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let mut a = app_in(&dir);
    a.set_data(format!("images:{}", imgs.display()));
    assert!(
        wait(&mut a, &ctx, 20.0, |a| !a.errors.is_empty()),
        "no error for {}",
        imgs.display()
    );
    assert!(
        a.errors.iter().any(|e| e.contains("imgs")),
        "{:?}",
        a.errors
    );
    assert!(!a.can_start());
    no_panic(&a);

    // a teacher file of random bytes, and the same file added to the gallery as a model
    let junk = dir.join("junk.safetensors");
    std::fs::write(
        &junk,
        (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let mut a = app_in(&dir);
    a.tab = Tab::Distill;
    a.use_exact_teacher = false;
    a.teacher_file = junk.display().to_string();
    a.train_samples = 20_000;
    a.start();
    let jn = junk.display().to_string();
    assert!(
        wait(&mut a, &ctx, 30.0, |a| a.status == RunStatus::Idle
            && !a.errors.is_empty()),
        "status {:?}, errors {:?}",
        a.status,
        a.errors
    );
    assert!(a.errors.iter().any(|e| e.contains(&jn)), "{:?}", a.errors);
    no_panic(&a);
    a.errors.clear();
    a.models.push((
        tract_studio::studio::ModelRef {
            label: "junk".into(),
            spec: jn.clone(),
            ..Default::default()
        },
        true,
    ));
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 60.0, |a| !a.gallery_busy
            && !a.errors.is_empty()),
        "errors {:?}",
        a.errors
    );
    assert!(a.errors.iter().any(|e| e.contains(&jn)), "{:?}", a.errors);
    no_panic(&a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The diffusers teacher and its students are a set of their own within Fashion-MNIST: the app
/// opened on it shows those models (the teacher at most at its 50-step DDIM), distills from
/// that teacher with the schedule and v student that won on it (docs/diffusers.md), and a
/// short run from it ends with a v student; the data's own set brings its own teacher back.
/// The app with the shipped models, opened on `data` (and `set`): it shows the gallery set
/// `diffusers` of `data`, its five models.
fn on_a_diffusers_set(data: &str, set: Option<&str>) -> StudioApp {
    let session = Session::new(burn::tensor::Device::flex(), Arc::new(|| {}));
    let a = StudioApp::new(
        session,
        AppOptions {
            data: Some(data.into()),
            set: set.map(String::from),
            runs_dir: Some(runs_dir()),
            ..Default::default()
        },
    );
    assert_eq!(a.gallery_set.as_deref(), Some("diffusers"));
    let specs: Vec<String> = a.models.iter().map(|m| m.0.spec.clone()).collect();
    assert_eq!(specs.len(), 5, "{specs:?}");
    let prefix = format!("{data}-diffusers-");
    assert!(specs.iter().all(|s| s.contains(&prefix)), "{specs:?}");
    a
}

#[test]
fn the_diffusers_set_offers_its_teacher_and_students() {
    use tract_studio::model::diffusers::Prediction;
    let ctx = egui::Context::default();
    let mut a = on_a_diffusers_set("fashion-mnist", Some("diffusers"));
    assert_eq!(a.models[0].0.max_steps, Some(50));
    assert!(
        a.teacher_file.contains("diffusers-teacher"),
        "{}",
        a.teacher_file
    );
    assert_eq!(a.schedule_text, "1000,40,1");
    assert_eq!(a.teacher_prediction(), Some(Prediction::Epsilon));
    let cfg = a.config();
    assert_eq!(cfg.student_prediction, Some(Prediction::VPrediction));
    assert_eq!(cfg.fit_samples, 8_000);
    assert_eq!(a.schedule_error(), None);
    // the teacher and the 2-step students at 1 step and "1024": the teacher's row stops at 50
    // steps, a student's at its own step count
    for (i, m) in a.models.iter_mut().enumerate() {
        m.1 = i == 0 || m.0.spec.contains("-2step");
    }
    for c in &mut a.step_choices {
        c.1 = c.0 == 1 || c.0 == 1024;
    }
    a.tab = Tab::Gallery;
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 600.0, |a| !a.gallery_busy
            && a.gallery.is_some()),
        "{:?}",
        a.errors
    );
    let (shape, cells) = a.gallery.clone().expect("gallery");
    assert_eq!(shape, vec![1, 32, 32]);
    let steps: Vec<usize> = cells.iter().map(|c| c.steps).collect();
    assert_eq!(steps, vec![50, 1, 2, 1, 2, 1]);
    let text = frame(&mut a, &ctx);
    assert!(
        text.contains("the diffusers teacher and its students"),
        "{text}"
    );
    // a short run from it: a v student, re-fitted first
    a.refit_samples = 32;
    a.train_samples = 64;
    a.batch = 16;
    a.start();
    assert_eq!(a.status, RunStatus::Running, "{:?}", a.errors);
    assert!(
        wait(&mut a, &ctx, 900.0, |a| a.status == RunStatus::Idle),
        "{:?}",
        a.errors
    );
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(
        a.phases.first().map(|p| p.as_str()),
        Some("fit"),
        "{:?}",
        a.phases
    );
    let dir = a.run_dir.clone().expect("a run dir");
    let student =
        tract_studio::checkpoint::ModelFile::load(&dir.join("student.safetensors")).unwrap();
    assert_eq!(
        student.meta.diffusers.map(|d| d.prediction),
        Some(Prediction::VPrediction)
    );
    // back to the data's own set: its teacher, the default schedule, no re-parametrisation
    a.set_gallery_set(None);
    assert!(
        a.teacher_file
            .ends_with("fashion-mnist-teacher.safetensors"),
        "{}",
        a.teacher_file
    );
    assert_eq!(a.schedule_text, "1024,32,1");
    assert_eq!(a.config().student_prediction, None);
    assert_eq!(a.models.len(), 4);
    let _ = std::fs::remove_dir_all(dir);
}

/// Everything the frame uploaded as textures (name-less: size and RGBA pixels).
fn frame_textures(app: &mut StudioApp, ctx: &egui::Context) -> Vec<([usize; 2], Vec<u8>)> {
    let out = ctx.run_ui(egui::RawInput::default(), |ui| app.show(ui));
    out.textures_delta
        .set
        .values()
        .flat_map(|ds| ds.iter())
        .filter_map(|d| match &d.image {
            egui::ImageData::Color(c) if d.pos.is_none() => Some((
                c.size,
                c.pixels
                    .iter()
                    .flat_map(|p| p.to_array())
                    .collect::<Vec<u8>>(),
            )),
            _ => None,
        })
        .collect()
}

fn byte(x: f32) -> u8 {
    ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0).round() as u8
}

/// The texture of a grid of 8x8 RGB samples (a square-ish grid, as the app lays them out) is
/// those samples, pixel for pixel; returns each image's colour at pixel (3, 3).
fn texture_is_the_samples(tex: &[([usize; 2], Vec<u8>)], s: &[f32]) -> Vec<[u8; 3]> {
    texture_is_the_images(tex, s, 8)
}

/// The same for RGB images of `side` x `side`.
fn texture_is_the_images(tex: &[([usize; 2], Vec<u8>)], s: &[f32], side: usize) -> Vec<[u8; 3]> {
    let (hw, chw) = (side * side, 3 * side * side);
    let n = s.len() / chw;
    let cols = (n as f64).sqrt().ceil() as usize;
    let (size, px) = tex
        .iter()
        .find(|t| t.0 == [cols * side, n.div_ceil(cols) * side])
        .expect("a texture of the grid's size");
    let mut at33 = vec![];
    for k in 0..n {
        for y in 0..side {
            for x in 0..side {
                let (gy, gx) = ((k / cols) * side + y, (k % cols) * side + x);
                let got = &px[(gy * size[0] + gx) * 4..][..4];
                let want = [0, 1, 2].map(|c| byte(s[k * chw + c * hw + y * side + x]));
                assert_eq!(got[..3], want[..], "image {k} pixel ({y}, {x})");
                assert_eq!(got[3], 255);
                if (y, x) == (3, 3) {
                    at33.push(want);
                }
            }
        }
    }
    at33
}

/// Colour from end to end in the app: eight one-colour PNGs (red, green, blue, ...) read as
/// `images:DIR,8,rgb` reach the Data panel's texture with the same colours (no channel swap, no
/// gamma, no range mistake), and a colour gallery cell's texture is its samples, pixel for
/// pixel: byte = round((x + 1) / 2 * 255), channel c of pixel (y, x) at c * 64 + y * 8 + x.
#[test]
fn colour_reaches_the_screen_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let colours: [[u8; 3]; 8] = [
        [255, 0, 0],
        [0, 255, 0],
        [255, 160, 0],
        [0, 128, 128],
        [30, 60, 200],
        [255, 255, 255],
        [128, 128, 128],
        [0, 0, 0],
    ];
    // no channel permutation maps the set onto itself (orange goes nowhere in it)
    for perm in [[1, 0, 2], [2, 1, 0], [0, 2, 1], [1, 2, 0], [2, 0, 1]] {
        let moved = colours.map(|c| [c[perm[0]], c[perm[1]], c[perm[2]]]);
        assert!(moved.iter().any(|m| !colours.contains(m)));
    }
    for (i, c) in colours.iter().enumerate() {
        image::RgbImage::from_pixel(8, 8, image::Rgb(*c))
            .save(dir.path().join(format!("{i}.png")))
            .unwrap();
    }
    let ctx = egui::Context::default();
    let mut a = app();
    a.set_data(format!("images:{},8,rgb", dir.path().display()));
    // waited for on another panel: a texture is made in the first frame that shows it
    a.tab = Tab::Schedule;
    assert!(
        wait(&mut a, &ctx, 30.0, |a| a.data_preview.is_some()),
        "{:?}",
        a.errors
    );
    a.tab = Tab::Data;
    let (_, shape, pts) = a.data_preview.clone().unwrap();
    assert_eq!(shape, vec![3, 8, 8]);
    // the preview's texture is its samples, and every image is one of the PNGs' colours,
    // exactly
    let tex = frame_textures(&mut a, &ctx);
    let shown = texture_is_the_samples(&tex, &pts);
    for (k, c) in shown.iter().enumerate() {
        assert!(
            colours.contains(c),
            "image {k}: {c:?} is none of the PNGs' colours"
        );
    }
    // a teacher trained in the app, then its gallery: the cell's texture is its samples
    a.teacher_samples = 64;
    a.batch = 8;
    a.runs_dir = dir.path().join("runs");
    a.start_teacher();
    assert!(
        wait(&mut a, &ctx, 120.0, |a| a.status == RunStatus::Idle),
        "{:?}",
        a.errors
    );
    a.models = vec![(
        tract_studio::studio::ModelRef {
            label: "teacher".into(),
            spec: a.teacher_file.clone(),
            ..Default::default()
        },
        true,
    )];
    for c in &mut a.step_choices {
        c.1 = c.0 == 1;
    }
    a.tab = Tab::Schedule;
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 60.0, |a| !a.gallery_busy
            && a.gallery.is_some()),
        "{:?}",
        a.errors
    );
    a.tab = Tab::Gallery;
    let (shape, cells) = a.gallery.clone().unwrap();
    assert_eq!(shape, vec![3, 8, 8]);
    let s = &cells[0].samples;
    let tex = frame_textures(&mut a, &ctx);
    texture_is_the_samples(&tex, s);
    let n = s.len() / 192;
    let coloured = (0..n * 64)
        .filter(|&i| {
            let (k, p) = (i / 64, i % 64);
            let c = [0, 1, 2].map(|c| byte(s[k * 192 + c * 64 + p]));
            c[0] != c[1] || c[1] != c[2]
        })
        .count();
    assert!(
        coloured > n * 32,
        "the samples are grey: {coloured} coloured pixels"
    );
    // the Compare panel puts one noise's image of every cell side by side: sample 5 of the
    // cell is its texture, pixel for pixel (a 1x1 grid of one 8x8 image)
    a.tab = Tab::Compare;
    a.compare_index = 5;
    let tex = frame_textures(&mut a, &ctx);
    texture_is_the_samples(&tex, &s[5 * 192..6 * 192]);
    let text = frame(&mut a, &ctx);
    assert!(
        text.contains("PSNR (dB) vs log2(steps)") && !text.contains("SW2"),
        "{text}"
    );
}

/// `app --data emoji` opens on its only set of shipped models, the diffusers teacher and its
/// students, in colour: the teacher to distill with the defaults that won (`1000,40,1`, a v
/// student), and a gallery cell of a 1-step student on screen is its samples, pixel for pixel.
/// Skipped where the font is missing (scripts/test.sh installs it when root).
#[test]
fn the_emoji_app_opens_on_its_colour_set() {
    use tract_studio::model::diffusers::Prediction;
    if !std::path::Path::new(tract_studio::data::emoji::NOTO_EMOJI).exists() {
        assert!(std::env::var_os("TRACT_REQUIRE_EMOJI").is_none());
        eprintln!("skipped: no emoji font (apt-get install fonts-noto-color-emoji)");
        return;
    }
    let ctx = egui::Context::default();
    let mut a = on_a_diffusers_set("emoji", None);
    assert!(
        a.teacher_file
            .ends_with("emoji-diffusers-teacher.safetensors"),
        "{}",
        a.teacher_file
    );
    assert_eq!(a.schedule_text, "1000,40,1");
    assert_eq!(a.config().student_prediction, Some(Prediction::VPrediction));
    // the TRACT 1-step student alone, at 1 step
    for m in a.models.iter_mut() {
        m.1 =
            m.0.spec
                .ends_with("emoji-diffusers-tract-1step.safetensors");
    }
    for c in &mut a.step_choices {
        c.1 = c.0 == 1;
    }
    a.tab = Tab::Schedule;
    a.render_gallery();
    assert!(
        wait(&mut a, &ctx, 300.0, |a| !a.gallery_busy
            && a.gallery.is_some()),
        "{:?}",
        a.errors
    );
    let (shape, cells) = a.gallery.clone().expect("gallery");
    assert_eq!(shape, vec![3, 32, 32]);
    assert_eq!(cells.len(), 1);
    a.tab = Tab::Gallery;
    let tex = frame_textures(&mut a, &ctx);
    texture_is_the_images(&tex, &cells[0].samples, 32);
    let text = frame(&mut a, &ctx);
    assert!(text.contains("emoji TRACT 1-step (v)"), "{text}");
}
