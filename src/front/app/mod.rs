//! The desktop studio (egui/eframe). It sends commands to `studio::Session` and renders
//! the updates it gets back; the math lives in the library.

mod panels;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use web_time::Instant;

use eframe::egui;

use crate::engine::distill::{DistillConfig, Event, Method, plan};
use crate::engine::schedule::{Param, Schedule};
use crate::jobs::studio::{Command, GalleryCell, ModelRef, Session, Update};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Data,
    Teacher,
    Schedule,
    Distill,
    Gallery,
    Compare,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Data,
        Tab::Teacher,
        Tab::Schedule,
        Tab::Distill,
        Tab::Gallery,
        Tab::Compare,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Tab::Data => "Data",
            Tab::Teacher => "Teacher",
            Tab::Schedule => "Schedule",
            Tab::Distill => "Distill",
            Tab::Gallery => "Gallery",
            Tab::Compare => "Compare",
        }
    }
    pub fn parse(s: &str) -> Option<Tab> {
        Tab::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Idle,
    Running,
    Stopping { pause: bool },
    Paused { dir: PathBuf },
}

/// What the app tells the page it runs in: its status line, its clock and the markers the
/// page's test waits for. The browser entry (`front::web`) passes one in with
/// [`StudioApp::with_page`]; the desktop app has none. (So the app never imports the web
/// entry: the web entry builds the app and hands it this.)
pub trait Page {
    /// Seconds since the page started loading.
    fn seconds(&self) -> f64;
    /// An attribute for the page's test, e.g. `data-first-row="1.23"`.
    fn mark(&self, name: &str, value: &str);
    /// The page's status line (errors, readiness, timings).
    fn status(&self, text: &str, error: bool);
    /// The gallery is drawn, `seconds` after the app started.
    fn gallery_drawn(&self, seconds: f64);
    /// A line for the browser's console.
    fn log(&self, line: &str);
}

/// Options from the command line (screenshots for docs and tests).
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    pub tab: Option<Tab>,
    pub screenshot: Option<PathBuf>,
    pub autostart: bool,
    pub assets: Option<PathBuf>,
    /// The browser build: sampling and gallery only.
    pub web: bool,
    /// Shown in the status bar (e.g. which compute backend the browser got).
    pub notice: Option<String>,
    /// The data to open with (default toy:ring8).
    pub data: Option<String>,
    /// The sampling seed to open with (default 0).
    pub seed: Option<u64>,
    /// The gallery set to open with (the manifest's `set`, e.g. `diffusers`; default the data's
    /// own models).
    pub set: Option<String>,
    /// Where runs started from the app go (default studio-runs/). At start the app looks
    /// there for a run that was stopped, cancelled or closed before it finished, and offers
    /// to resume it.
    pub runs_dir: Option<PathBuf>,
}

pub struct StudioApp {
    pub session: Session,
    pub tab: Tab,
    // data
    pub data_spec: String,
    /// The gallery's set of shipped models within the data (the manifest's `set`: the models
    /// made from one teacher; none is the data's own).
    pub gallery_set: Option<String>,
    pub mixture_path: String,
    /// (spec, one sample's shape, samples)
    pub data_preview: Option<(String, Vec<usize>, Vec<f32>)>,
    pub image_folder: String,
    /// The last data spec parsed and what came of it (the data, or why it did not load).
    data_cache: std::cell::RefCell<Option<(String, Result<crate::engine::data::Data, String>)>>,
    /// where runs started from the app go (default studio-runs/)
    pub runs_dir: PathBuf,
    /// samples for training a teacher on image data from the app
    pub teacher_samples: u64,
    // teacher
    pub teacher_file: String,
    /// What a diffusers teacher's student predicts (none: what the teacher does), and for how
    /// many samples it is first re-fitted to the teacher when that differs.
    pub student_prediction: Option<crate::engine::model::diffusers::Prediction>,
    pub refit_samples: u64,
    /// The teacher file last looked at, and its network's prediction when it is a diffusers one.
    teacher_kind:
        std::cell::RefCell<Option<(String, Option<crate::engine::model::diffusers::Prediction>)>>,
    pub use_exact_teacher: bool,
    pub teacher_preview: Option<Vec<GalleryCell>>,
    teacher_requested: bool,
    // schedule + distill settings
    /// VP (cosine log-SNR, DDIM teacher) or VE (Karras sigmas, Heun teacher).
    pub param: Param,
    pub schedule_text: String,
    pub method: Method,
    pub mu_s: f64,
    pub train_samples: u64,
    pub fit_samples: u64,
    pub batch: usize,
    pub seed: u64,
    // run
    pub status: RunStatus,
    pub run_dir: Option<PathBuf>,
    pub phases: Vec<String>,
    pub losses: Vec<(usize, u64, f32)>,
    pub progress: (u64, u64),
    pub rate: Option<f64>,
    rate_mark: Option<(Instant, u64)>,
    pub live: Option<(usize, Vec<f32>)>,
    pub last_student: Option<PathBuf>,
    // gallery
    pub models: Vec<(ModelRef, bool)>,
    /// Every shipped model (assets/manifest.json or the embedded copies).
    pub manifest: Vec<crate::jobs::assets::ManifestEntry>,
    pub step_choices: Vec<(usize, bool)>,
    /// (one sample's shape, cells)
    pub gallery: Option<(Vec<usize>, Vec<GalleryCell>)>,
    pub gallery_busy: bool,
    /// A render asked for while model files were still arriving (the browser): it starts
    /// when they have all arrived or failed.
    pub gallery_wanted: bool,
    /// The next progressive cell starts a new gallery (the previous one stays until then).
    gallery_fresh: bool,
    /// Chosen models whose files could not be loaded (the browser), with the reason.
    pub missing: Vec<String>,
    /// (model, steps, seconds it took, frame it arrived at) per cell of the running gallery,
    /// in the order they were computed.
    pub cell_log: Vec<(String, usize, f64, u64)>,
    pub cell_size: f32,
    /// Images: which sample of each gallery cell the Compare panel puts side by side.
    pub compare_index: usize,
    /// Points per gallery cell.
    pub gallery_n: usize,
    pub show_paths: bool,
    pub add_model_path: String,
    /// Frame at which the last gallery result arrived (the page reports "drawn" after it).
    pub gallery_ready_at_frame: Option<u64>,
    /// The page the app runs in (the browser), told about cells, the drawn gallery, errors.
    page: Option<Box<dyn Page>>,
    web_reported: bool,
    /// How many cells of `cell_log` the page has been told about.
    web_cells: usize,
    /// The page's `data-cells` marker so far (`model|steps|seconds|page time;...`).
    web_cells_mark: String,
    web_errors: usize,
    // status
    pub errors: Vec<String>,
    pub log: Vec<String>,
    frame_ms: VecDeque<f32>,
    last_frame: Option<Instant>,
    frames: u64,
    opts: AppOptions,
    shot_done: Arc<Mutex<Option<Result<PathBuf, String>>>>,
    shot_requested: bool,
    started: Instant,
}

/// The most recently checkpointed run in `runs_dir` that has not finished: a training state
/// and no final model (a student's or a teacher's).
pub fn unfinished_run(runs_dir: &std::path::Path) -> Option<PathBuf> {
    use crate::engine::distill;
    let state = distill::STATE_FILE;
    std::fs::read_dir(runs_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| {
            d.join(state).is_file()
                && !d.join(distill::STUDENT_FILE).exists()
                && !d.join(distill::TEACHER_FILE).exists()
        })
        .filter_map(|d| {
            let t = std::fs::metadata(d.join(state)).ok()?.modified().ok()?;
            Some((t, d))
        })
        .max()
        .map(|(_, d)| d)
}

impl StudioApp {
    pub fn new(session: Session, opts: AppOptions) -> Self {
        let mut app = StudioApp {
            session,
            tab: opts.tab.unwrap_or(Tab::Data),
            data_spec: "toy:ring8".into(),
            mixture_path: String::new(),
            data_preview: None,
            image_folder: String::new(),
            data_cache: std::cell::RefCell::new(None),
            gallery_set: opts.set.clone(),
            runs_dir: opts
                .runs_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("studio-runs")),
            teacher_samples: 20_000,
            teacher_file: String::new(),
            student_prediction: None,
            refit_samples: 8_000,
            teacher_kind: std::cell::RefCell::new(None),
            use_exact_teacher: true,
            teacher_preview: None,
            teacher_requested: false,
            param: Param::Vp,
            schedule_text: "1024,32,1".into(),
            method: Method::Tract,
            mu_s: 0.5,
            train_samples: 1_000_000,
            fit_samples: 500_000,
            batch: 512,
            seed: 0,
            status: RunStatus::Idle,
            run_dir: None,
            phases: vec![],
            losses: vec![],
            progress: (0, 1),
            rate: None,
            rate_mark: None,
            live: None,
            last_student: None,
            models: vec![],
            manifest: vec![],
            step_choices: [1usize, 2, 4, 8, 32, 1024]
                .iter()
                .map(|&k| (k, k <= 2 || k == 1024))
                .collect(),
            gallery: None,
            gallery_busy: false,
            gallery_wanted: false,
            gallery_fresh: true,
            missing: vec![],
            cell_log: vec![],
            cell_size: 170.0,
            compare_index: 0,
            gallery_n: 2000,
            show_paths: true,
            add_model_path: String::new(),
            gallery_ready_at_frame: None,
            page: None,
            web_reported: false,
            web_cells: 0,
            web_cells_mark: String::new(),
            web_errors: 0,
            errors: vec![],
            log: vec![],
            frame_ms: VecDeque::new(),
            last_frame: None,
            frames: 0,
            shot_done: Arc::new(Mutex::new(None)),
            shot_requested: false,
            started: Instant::now(),
            opts,
        };
        if app.opts.web {
            // lighter defaults in the browser: fewer points per cell
            app.gallery_n = 1000;
            for c in &mut app.step_choices {
                c.1 = c.0 <= 8;
            }
            app.step_choices.retain(|c| c.0 <= 32);
        }
        if let Some(seed) = app.opts.seed {
            app.seed = seed;
        }
        app.load_assets();
        match app.opts.data.clone() {
            Some(d) if d != app.data_spec => app.set_data(d),
            _ => {
                app.refresh_data();
                app.render_gallery();
            }
        }
        if !app.opts.web && !app.opts.autostart {
            app.offer_unfinished_run();
        }
        if app.opts.autostart {
            app.tab = Tab::Distill;
            app.fit_samples = 200_000;
            app.start();
        }
        app
    }

    /// A run under `runs_dir` that has a training state but no final model (the app was
    /// closed, or the run cancelled, before it finished) becomes the paused run: Resume
    /// continues it from its last checkpoint with the options it was started with, Cancel
    /// leaves it and the next Start begins a new one.
    fn offer_unfinished_run(&mut self) {
        if let Some(dir) = unfinished_run(&self.runs_dir) {
            self.log.push(format!(
                "found an unfinished run {} (stopped or closed before it finished): Resume continues it, Cancel starts afresh",
                dir.display()
            ));
            self.run_dir = Some(dir.clone());
            self.status = RunStatus::Paused { dir };
        }
    }

    /// Report to `page` from now on (the browser entry's page).
    pub fn with_page(mut self, page: Box<dyn Page>) -> Self {
        self.page = Some(page);
        self
    }

    /// Shipped checkpoints from assets/manifest.json join the gallery at start.
    /// assets/manifest.json when it is there (or --assets), else the embedded copies.
    fn load_assets(&mut self) {
        let path = self
            .opts
            .assets
            .clone()
            .unwrap_or_else(|| PathBuf::from("assets/manifest.json"));
        let entries = if path.exists() {
            match crate::jobs::assets::read_manifest(&path) {
                Ok(e) => e,
                Err(e) => {
                    self.errors.push(e.to_string());
                    vec![]
                }
            }
        } else if self.opts.assets.is_some() {
            self.log
                .push(format!("no shipped models ({} not found)", path.display()));
            vec![]
        } else {
            crate::jobs::assets::manifest()
        };
        self.manifest = entries;
        // the set asked for at start is checked against the data asked for (set_data follows)
        let data = self
            .opts
            .data
            .clone()
            .unwrap_or_else(|| self.data_spec.clone());
        self.keep_set_of(&data);
        self.models_for_data();
    }

    /// The gallery's models for the current data: the exact teacher for mixtures, then the
    /// shipped models made for this data.
    fn models_for_data(&mut self) {
        self.models.clear();
        if !self.is_images() {
            self.models.push((
                ModelRef {
                    label: "teacher (exact)".into(),
                    spec: format!("exact:{}", self.data_spec),
                    max_steps: None,
                },
                true,
            ));
        }
        let set = self.gallery_set.clone();
        for e in self
            .manifest
            .iter()
            .filter(|e| e.is_in(&self.data_spec, set.as_deref()))
        {
            self.models.push((
                ModelRef {
                    label: e.name.clone(),
                    spec: e.path.clone(),
                    max_steps: e.max_steps,
                },
                true,
            ));
        }
    }

    /// One sample's shape from the data preview (`[2]` until it arrives).
    pub fn sample_shape(&self) -> Vec<usize> {
        self.data_preview
            .as_ref()
            .map(|d| d.1.clone())
            .unwrap_or_else(|| vec![2])
    }

    /// Train a teacher on the current (image) data: a run like any other, shown in Distill.
    pub fn start_teacher(&mut self) {
        self.method = Method::Teacher;
        self.start();
        if self.status != RunStatus::Running {
            self.method = Method::Tract;
        } else {
            self.tab = Tab::Distill;
        }
    }

    /// Image data (a UNet teacher from a file) rather than a mixture (exact teacher)?
    pub fn is_images(&self) -> bool {
        !crate::engine::data::Data::is_mixture_spec(&self.data_spec)
    }

    /// Switch the data: the gallery's models, the teacher choice and the defaults follow.
    pub fn set_data(&mut self, spec: String) {
        self.data_spec = spec;
        // a failure is asked again (the folder or file may have been mended)
        let failed = matches!(self.data_cache.borrow().as_ref(), Some((_, Err(_))));
        if failed {
            *self.data_cache.borrow_mut() = None;
        }
        self.gallery = None;
        self.teacher_preview = None;
        self.teacher_requested = false;
        self.data_preview = None;
        self.keep_set_of(&self.data_spec.clone());
        if self.is_images() {
            self.use_exact_teacher = false;
            if let Some(t) = self.set_teacher() {
                self.use_teacher(&t);
            }
            self.batch = 64;
            self.train_samples = 50_000;
            self.show_paths = false;
            // a UNet at 1024 steps per model takes minutes on a CPU: 32 is the top column
            for c in &mut self.step_choices {
                c.1 = matches!(c.0, 1 | 2 | 32);
            }
        } else {
            self.use_exact_teacher = true;
            self.batch = 512;
            self.train_samples = 1_000_000;
        }
        self.models_for_data();
        // the browser has no data sets on disk: its image galleries come from the models alone
        if !(self.opts.web && self.is_images()) {
            self.refresh_data();
        }
        self.render_gallery();
    }

    /// Keep the gallery set where `data` has it, else take the data's first set.
    fn keep_set_of(&mut self, data: &str) {
        if !crate::jobs::assets::sets(&self.manifest, data).contains(&self.gallery_set) {
            self.gallery_set = crate::jobs::assets::default_set(&self.manifest, data);
        }
    }

    /// The shipped teacher of the current data and gallery set (else of the data).
    fn set_teacher(&self) -> Option<crate::jobs::assets::ManifestEntry> {
        let teachers = || {
            self.manifest
                .iter()
                .filter(|e| e.data == self.data_spec && e.kind == "teacher")
        };
        teachers()
            .find(|e| e.set == self.gallery_set)
            .or_else(|| teachers().next())
            .cloned()
    }

    /// Distill from a shipped teacher: a diffusers teacher (a 1000-step DDPM grid, an epsilon
    /// network) gets the schedule and student parametrisation that won on it
    /// (docs/diffusers.md): `1000,40,1`, a v student re-fitted for 8,000 samples first.
    pub fn use_teacher(&mut self, e: &crate::jobs::assets::ManifestEntry) {
        self.teacher_file = e.path.clone();
        self.use_exact_teacher = false;
        self.teacher_requested = false;
        let default = crate::engine::distill::default_schedule(self.param);
        if e.set.as_deref() == Some("diffusers") {
            if self.schedule_text == default || self.schedule_text.starts_with("1024,") {
                self.schedule_text = format!("{},40,1", e.steps);
            }
            self.student_prediction =
                Some(crate::engine::model::diffusers::Prediction::VPrediction);
        } else {
            if self.schedule_text.starts_with("1000,") {
                self.schedule_text = default.into();
            }
            self.student_prediction = None;
        }
    }

    /// Show the gallery of another set of shipped models (the teacher to distill follows).
    pub fn set_gallery_set(&mut self, set: Option<String>) {
        if set == self.gallery_set {
            return;
        }
        self.gallery_set = set;
        if self.is_images()
            && matches!(self.status, RunStatus::Idle)
            && let Some(t) = self.set_teacher()
        {
            self.use_teacher(&t);
        }
        self.gallery = None;
        self.models_for_data();
        self.render_gallery();
    }

    /// Data sets with shipped models, plus the current one (the gallery's data choice).
    pub fn data_choices(&self) -> Vec<String> {
        let mut v = vec![self.data_spec.clone()];
        for e in &self.manifest {
            if !v.contains(&e.data) {
                v.push(e.data.clone());
            }
        }
        v
    }

    pub fn data(&self) -> String {
        self.data_spec.clone()
    }

    pub fn refresh_data(&mut self) {
        self.session.send(Command::PreviewData {
            data: self.data(),
            n: 4000,
        });
    }

    /// Switch VP / VE; a schedule left at one's default follows to the other's.
    pub fn set_param(&mut self, param: Param) {
        let default = crate::engine::distill::default_schedule;
        if self.schedule_text == default(self.param) {
            self.schedule_text = default(param).into();
        }
        self.param = param;
    }

    /// The schedule error shown under the editor; Start is disabled while there is one.
    pub fn schedule_error(&self) -> Option<String> {
        let s = Schedule::parse(&self.schedule_text)
            .err()
            .map(|e| e.to_string());
        if s.is_some() {
            return s;
        }
        plan(&self.config()).err().map(|e| e.to_string())
    }

    /// The current data, parsed once per spec (an image set is tens of MB; the UI asks every
    /// frame); the error is kept too.
    fn parse_data(&self) -> Result<crate::engine::data::Data, String> {
        if let Some((spec, r)) = self.data_cache.borrow().as_ref()
            && *spec == self.data_spec
        {
            return r.clone();
        }
        let r = crate::engine::data::Data::parse(&self.data_spec).map_err(|e| e.to_string());
        *self.data_cache.borrow_mut() = Some((self.data_spec.clone(), r.clone()));
        r
    }

    /// Why the current data cannot be used (Start is disabled meanwhile), if it cannot.
    pub fn data_error(&self) -> Option<String> {
        self.parse_data().err()
    }

    pub fn can_start(&self) -> bool {
        self.schedule_error().is_none()
            && self.data_error().is_none()
            && matches!(self.status, RunStatus::Idle | RunStatus::Paused { .. })
            && (self.train_samples > 0 || self.method == Method::Teacher)
    }

    pub fn config(&self) -> DistillConfig {
        // Start is disabled while the data does not load (`can_start`)
        let data = self
            .parse_data()
            .unwrap_or_else(|_| crate::engine::data::Data::parse("toy:ring8").expect("built in"));
        let mut cfg = DistillConfig::new(&data, self.param);
        cfg.schedule = self.schedule_text.clone();
        cfg.method = self.method;
        cfg.mu_s = self.mu_s;
        cfg.train_samples = self.train_samples;
        cfg.fit_samples = self.fit_samples;
        cfg.batch = self.batch.max(1);
        cfg.seed = self.seed;
        if self.method == Method::Teacher {
            cfg.teacher = "data".into();
            cfg.fit_samples = self.teacher_samples;
            cfg.train_samples = 0;
            if let crate::engine::model::NetConfig::Unet(u) = &cfg.net {
                cfg.net = crate::engine::model::NetConfig::Unet(
                    crate::engine::model::UnetConfig::tiny(u.channels, u.height, u.width, u.param),
                );
            }
        } else if !self.use_exact_teacher && !self.teacher_file.is_empty() {
            cfg.teacher = self.teacher_file.clone();
            // a re-parametrised diffusers student is first re-fitted to its teacher
            if let Some(teacher) = self.teacher_prediction()
                && let Some(p) = self.student_prediction
            {
                cfg.student_prediction = Some(p);
                cfg.fit_samples = if p == teacher { 0 } else { self.refit_samples };
            }
        }
        cfg
    }

    /// The teacher file's prediction type when it is a diffusers network (read once per
    /// file name; none for other networks and files that do not load).
    pub fn teacher_prediction(&self) -> Option<crate::engine::model::diffusers::Prediction> {
        if self.use_exact_teacher || self.teacher_file.is_empty() {
            return None;
        }
        if let Some((spec, p)) = self.teacher_kind.borrow().as_ref()
            && spec == &self.teacher_file
        {
            return *p;
        }
        let p = crate::jobs::generate::model_file(&self.teacher_file)
            .ok()
            .and_then(|f| f.meta.diffusers.map(|d| d.prediction));
        *self.teacher_kind.borrow_mut() = Some((self.teacher_file.clone(), p));
        p
    }

    fn new_run_dir(&self) -> PathBuf {
        let base = self.runs_dir.clone();
        let name = (match self.method {
            Method::Tract => "tract",
            Method::Btd => "btd",
            Method::Teacher => "teacher",
        })
        .to_string();
        (1..)
            .map(|i| base.join(format!("{name}-{i:03}")))
            .find(|p| !p.exists())
            .expect("a free name")
    }

    pub fn start(&mut self) {
        if !self.can_start() {
            return;
        }
        let (dir, resume) = match &self.status {
            RunStatus::Paused { dir } => (dir.clone(), true),
            _ => {
                self.losses.clear();
                self.phases.clear();
                self.live = None;
                (self.new_run_dir(), false)
            }
        };
        self.log.push(format!(
            "{} {}",
            if resume { "resuming" } else { "starting" },
            dir.display()
        ));
        self.run_dir = Some(dir.clone());
        self.status = RunStatus::Running;
        self.rate_mark = None;
        self.session.send(Command::Distill {
            cfg: Box::new(self.config()),
            dir,
            resume,
        });
    }

    pub fn pause(&mut self) {
        if self.status == RunStatus::Running {
            self.status = RunStatus::Stopping { pause: true };
            self.session.stop();
        }
    }

    pub fn cancel(&mut self) {
        match &self.status {
            RunStatus::Running => {
                self.status = RunStatus::Stopping { pause: false };
                self.session.stop();
            }
            RunStatus::Paused { .. } => self.status = RunStatus::Idle,
            _ => {}
        }
    }

    pub fn selected_steps(&self) -> Vec<usize> {
        self.step_choices
            .iter()
            .filter(|c| c.1)
            .map(|c| c.0)
            .collect()
    }

    pub fn render_gallery(&mut self) {
        use crate::jobs::assets::FileState;
        let chosen: Vec<ModelRef> = self
            .models
            .iter()
            .filter(|m| m.1)
            .map(|m| m.0.clone())
            .collect();
        // the browser fetches the model files: wait for them (show() asks again)
        if chosen
            .iter()
            .any(|m| crate::jobs::assets::state(&m.spec) == FileState::Pending)
        {
            self.gallery_wanted = true;
            return;
        }
        self.gallery_wanted = false;
        self.missing.clear();
        let mut models = vec![];
        for m in chosen {
            match crate::jobs::assets::state(&m.spec) {
                FileState::Failed(why) => self.missing.push(format!("{}: {why}", m.label)),
                _ => models.push(m),
            }
        }
        if models.is_empty() || self.selected_steps().is_empty() {
            return;
        }
        self.gallery_busy = true;
        self.gallery_fresh = true;
        self.cell_log.clear();
        self.web_cells = 0;
        self.web_reported = false;
        self.gallery_ready_at_frame = None;
        self.session.send(Command::Gallery {
            tag: "gallery".into(),
            data: self.data(),
            models,
            steps: self.selected_steps(),
            n: self.gallery_n,
            seed: self.seed,
            paths: 24,
        });
    }

    /// Apply every pending update from the background jobs.
    pub fn poll(&mut self) {
        while let Ok(u) = self.session.rx.try_recv() {
            self.apply(u);
        }
    }

    pub fn apply(&mut self, u: Update) {
        match u {
            // a preview of data chosen before the current one is stale
            Update::DataPreview {
                data,
                shape,
                points,
            } if data == self.data_spec => self.data_preview = Some((data, shape, points)),
            Update::DataPreview { .. } => {}
            Update::Distill(e) => match e {
                Event::PhaseStart { index, name, .. } => {
                    if self.phases.len() <= index {
                        self.phases.resize(index + 1, String::new());
                    }
                    self.phases[index] = name;
                }
                Event::Step {
                    phase,
                    samples_done,
                    samples_total,
                    loss,
                    ..
                } => {
                    let g = self.losses.len() as u64;
                    self.losses.push((phase, g, loss));
                    self.progress = (samples_done, samples_total);
                    let now = Instant::now();
                    match self.rate_mark {
                        Some((t, s)) if now.duration_since(t).as_secs_f64() > 1.0 => {
                            self.rate = Some(
                                (samples_done.saturating_sub(s)) as f64
                                    / now.duration_since(t).as_secs_f64(),
                            );
                            self.rate_mark = Some((now, samples_done));
                        }
                        None => self.rate_mark = Some((now, samples_done)),
                        _ => {}
                    }
                }
                Event::Preview { steps, samples, .. } => self.live = Some((steps, samples)),
                Event::PhaseEnd { path, .. } => self.log.push(format!("saved {}", path.display())),
                Event::Checkpoint { .. } => {}
            },
            Update::Finished { student } => {
                self.log.push(format!("finished: {}", student.display()));
                let label = format!(
                    "{} (new)",
                    match self.method {
                        Method::Tract => "TRACT",
                        Method::Btd => "BTD",
                        Method::Teacher => "teacher",
                    }
                );
                self.models.push((
                    ModelRef {
                        label,
                        spec: student.display().to_string(),
                        max_steps: None,
                    },
                    true,
                ));
                if self.method == Method::Teacher {
                    // the new teacher is the one to distill from
                    self.teacher_file = student.display().to_string();
                    self.use_exact_teacher = false;
                    self.teacher_requested = false;
                    self.method = Method::Tract;
                }
                self.last_student = Some(student);
                self.status = RunStatus::Idle;
            }
            Update::Stopped { dir } => {
                self.status = match self.status {
                    RunStatus::Stopping { pause: true } => RunStatus::Paused { dir },
                    _ => RunStatus::Idle,
                };
                self.log.push("stopped".into());
            }
            // a progressive cell of the running gallery: drawn at once, metrics may follow
            Update::GalleryCell { tag, shape, cell } => {
                if tag == "gallery" && self.gallery_busy {
                    self.cell_log
                        .push((cell.model.clone(), cell.steps, cell.seconds, self.frames));
                    match &mut self.gallery {
                        Some((sh, cells)) if !self.gallery_fresh && *sh == shape => {
                            cells.push(cell)
                        }
                        _ => self.gallery = Some((shape, vec![cell])),
                    }
                    self.gallery_fresh = false;
                }
            }
            Update::Gallery {
                tag, shape, cells, ..
            } => {
                if tag == "teacher" {
                    self.teacher_preview = Some(cells);
                } else {
                    self.gallery_busy = false;
                    self.gallery = Some((shape, cells));
                    self.gallery_ready_at_frame = Some(self.frames);
                }
            }
            Update::Error(e) => {
                if matches!(self.status, RunStatus::Running | RunStatus::Stopping { .. }) {
                    self.status = RunStatus::Idle;
                }
                self.gallery_busy = false;
                self.errors.push(e);
            }
        }
    }

    /// The whole UI (also used by the headless tests).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        self.poll();
        if self.gallery_wanted {
            self.render_gallery();
        }
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("tract-studio");
                ui.separator();
                for t in Tab::ALL {
                    if self.opts.web && t == Tab::Distill {
                        continue;
                    }
                    ui.selectable_value(&mut self.tab, t, t.name());
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| match self.tab {
                Tab::Data => self.data_panel(ui),
                Tab::Teacher => self.teacher_panel(ui),
                Tab::Schedule => self.schedule_panel(ui),
                Tab::Distill => self.distill_panel(ui),
                Tab::Gallery => self.gallery_panel(ui),
                Tab::Compare => self.compare_panel(ui),
            });
        });
        self.frames += 1;
        let ms = t0.elapsed().as_secs_f32() * 1000.0;
        self.frame_ms.push_back(ms);
        if self.frame_ms.len() > 120 {
            self.frame_ms.pop_front();
        }
        if matches!(self.status, RunStatus::Running | RunStatus::Stopping { .. })
            || self.gallery_busy
            || self.gallery_wanted
            // a few frames after the gallery is done, so the page hears that it is drawn
            || self.gallery_ready_at_frame.is_some_and(|f| self.frames <= f + 4)
        {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// A spinner on the desktop; in the browser a still label: a spinner repaints every
    /// frame, and on a software-rendered page (no GPU: the CPU module's case) those frames
    /// take the cores the gallery workers need.
    pub(crate) fn busy_sign(&self, ui: &mut egui::Ui, label: &str) {
        if self.opts.web {
            if !label.is_empty() {
                ui.label(label);
            }
        } else {
            ui.spinner();
        }
    }

    /// Mean and max of the recent UI build times (ms).
    pub fn frame_stats(&self) -> (f32, f32) {
        let n = self.frame_ms.len().max(1) as f32;
        (
            self.frame_ms.iter().sum::<f32>() / n,
            self.frame_ms.iter().cloned().fold(0.0, f32::max),
        )
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let (mean, max) = self.frame_stats();
            let interval = self
                .last_frame
                .map(|t| t.elapsed().as_secs_f32() * 1000.0)
                .unwrap_or(0.0);
            self.last_frame = Some(Instant::now());
            if let Some(n) = &self.opts.notice {
                ui.colored_label(egui::Color32::from_rgb(220, 160, 40), n);
                ui.separator();
            }
            ui.label(
                format!("{:?}", self.status)
                    .split(" {")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
            ui.separator();
            ui.label(format!(
                "UI {mean:.1} ms (max {max:.1}), frame interval {interval:.0} ms"
            ));
            if let Some(e) = self.errors.last() {
                ui.separator();
                ui.colored_label(egui::Color32::from_rgb(200, 40, 40), format!("error: {e}"));
                if ui.small_button("dismiss").clicked() {
                    self.errors.clear();
                }
            } else if let Some(l) = self.log.last() {
                ui.separator();
                ui.label(l);
            }
        });
    }

    /// Screenshot mode: once the panel has what it needs, capture, save and close.
    fn screenshot_logic(&mut self, ctx: &egui::Context) {
        let Some(path) = self.opts.screenshot.clone() else {
            return;
        };
        if let Some(done) = self.shot_done.lock().expect("lock").take() {
            match done {
                Ok(p) => eprintln!(
                    "screenshot: {} (UI build time mean/max {:?} ms over {} frames)",
                    p.display(),
                    self.frame_stats(),
                    self.frames
                ),
                Err(e) => eprintln!("screenshot failed: {e}"),
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let waited = self.started.elapsed().as_secs_f32();
        let ready = match self.tab {
            // the whole gallery drawn (a few frames after its last cell), not its first
            // progressive cells
            Tab::Gallery | Tab::Compare => {
                !self.gallery_busy
                    && !self.gallery_wanted
                    && self
                        .gallery_ready_at_frame
                        .is_some_and(|f| self.frames > f + 3)
            }
            Tab::Data => self.data_preview.is_some(),
            Tab::Teacher => self.teacher_preview.is_some(),
            Tab::Distill => {
                !self.opts.autostart
                    || (self.phases.len() >= 3
                        && self.live.is_some()
                        && self.losses.iter().filter(|l| l.0 == 2).count() > 300)
                    || (self.status == RunStatus::Idle && !self.losses.is_empty())
            }
            Tab::Schedule => true,
        };
        if !self.shot_requested && self.frames > 10 && (ready || waited > 240.0) {
            self.shot_requested = true;
            let done = self.shot_done.clone();
            ctx.request_screenshot(move |img| {
                let mut cv = crate::jobs::plot::Canvas::new(img.size[0], img.size[1], [0, 0, 0]);
                for (i, p) in img.pixels.iter().enumerate() {
                    cv.px[i] = [p.r(), p.g(), p.b()];
                }
                *done.lock().expect("lock") = Some(
                    cv.save_png(&path)
                        .map(|_| path.clone())
                        .map_err(|e| e.to_string()),
                );
            });
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(50));
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
        let ctx = ui.ctx().clone();
        self.screenshot_logic(&ctx);
        self.report_to_page();
    }
}

impl StudioApp {
    /// The page (if any) learns when each cell and the whole gallery have been drawn, and
    /// sees every error.
    pub fn report_to_page(&mut self) {
        let Some(page) = &self.page else { return };
        // each cell once the frame that laid it out is done (it is painted right after)
        while let Some((model, steps, secs, f)) = self.cell_log.get(self.web_cells).cloned() {
            if self.frames <= f {
                break;
            }
            self.web_cells += 1;
            let t = page.seconds();
            let line = format!("{model}|{steps}|{secs:.3}|{t:.3}");
            page.log(&format!("gallery cell drawn: {line}"));
            if steps == 1 && self.web_cells == 1 {
                page.mark("data-first-row", &format!("{t:.3}"));
            }
            if self.web_cells == 1 || self.web_cells_mark.is_empty() {
                self.web_cells_mark = line;
            } else {
                self.web_cells_mark = format!("{};{line}", self.web_cells_mark);
            }
            page.mark("data-cells", &self.web_cells_mark);
        }
        if let Some(f) = self.gallery_ready_at_frame
            && self.frames > f + 2
            && !self.web_reported
        {
            self.web_reported = true;
            page.gallery_drawn(self.started.elapsed().as_secs_f64());
        }
        if self.errors.len() > self.web_errors {
            self.web_errors = self.errors.len();
            page.status(
                &format!("error: {}", self.errors.last().expect("non-empty")),
                true,
            );
        }
    }
}

/// Open the window. Errors (no display, no adapter) come back as text.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_app(opts: AppOptions, device: burn::tensor::Device) -> Result<(), String> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 820.0])
            .with_title("tract-studio"),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "tract-studio",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let session = Session::new(device, Arc::new(move || ctx.request_repaint()));
            Ok(Box::new(StudioApp::new(session, opts)))
        }),
    )
    .map_err(|e| format!("cannot open the desktop window ({e}); without a display, use the command line (tract-studio --help)"))
}
