//! The six panels. Drawing only: numbers come from the library through the session.

use eframe::egui::{self, Color32, Stroke};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::{RunStatus, StudioApp};
use crate::engine::distill::{Method, PhaseKind, plan};
use crate::engine::schedule::{
    Grid, KARRAS_SIGMA_MAX, KARRAS_SIGMA_MIN, Param, Schedule, vp_lambda,
};
use crate::jobs::studio::{Command, GalleryCell, ModelRef};

const BLUE: Color32 = Color32::from_rgb(40, 90, 180);
const PHASE_COLORS: [Color32; 6] = [
    Color32::from_rgb(40, 90, 180),
    Color32::from_rgb(210, 100, 30),
    Color32::from_rgb(40, 150, 70),
    Color32::from_rgb(160, 60, 160),
    Color32::from_rgb(30, 150, 160),
    Color32::from_rgb(140, 140, 30),
];

/// A square scatter plot of the first two coordinates, optionally with paths.
fn scatter(
    ui: &mut egui::Ui,
    id: &str,
    points: &[f32],
    dim: usize,
    size: f32,
    paths: Option<&[Vec<f32>]>,
) {
    let pts: PlotPoints = points
        .chunks(dim)
        .map(|p| [p[0] as f64, if dim > 1 { p[1] as f64 } else { 0.0 }])
        .collect();
    Plot::new(id)
        .width(size)
        .height(size)
        .data_aspect(1.0)
        .include_x(-2.6)
        .include_x(2.6)
        .include_y(-2.6)
        .include_y(2.6)
        .show_axes(false)
        .allow_scroll(false)
        .show(ui, |pui| {
            pui.points(
                Points::new("samples", pts)
                    .radius(1.2)
                    .color(BLUE.gamma_multiply(0.5)),
            );
            if let Some(path) = paths {
                let n = path.first().map(|p| p.len() / dim).unwrap_or(0);
                for i in 0..n {
                    let line: PlotPoints = path
                        .iter()
                        .map(|s| {
                            [
                                s[i * dim] as f64,
                                if dim > 1 { s[i * dim + 1] as f64 } else { 0.0 },
                            ]
                        })
                        .collect();
                    pui.line(
                        Line::new(format!("path {i}"), line)
                            .color(Color32::from_rgb(220, 90, 40))
                            .width(1.0),
                    );
                }
            }
        });
}

/// Samples as they are: a scatter of points, or a grid of images (a texture, made again
/// only when the samples change).
fn samples_view(
    ui: &mut egui::Ui,
    id: &str,
    points: &[f32],
    shape: &[usize],
    size: f32,
    paths: Option<&[Vec<f32>]>,
) {
    if shape.len() != 3 {
        scatter(
            ui,
            id,
            points,
            shape.first().copied().unwrap_or(2).max(1),
            size,
            paths,
        );
        return;
    }
    use std::hash::{Hash, Hasher};
    let [c, h, w] = [shape[0], shape[1], shape[2]];
    let n = points.len() / (c * h * w).max(1);
    if n == 0 {
        return;
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let mut hs = std::collections::hash_map::DefaultHasher::new();
    points.len().hash(&mut hs);
    for v in points.iter().step_by(5) {
        v.to_bits().hash(&mut hs);
    }
    let fp = hs.finish();
    let key = egui::Id::unique(("samples-texture", id));
    let cached: Option<(u64, egui::TextureHandle)> = ui.ctx().data(|d| d.get_temp(key));
    let tex = match cached {
        Some((f, t)) if f == fp => t,
        _ => {
            let px =
                crate::engine::kernels::reference::rgba_grid(points, [n, c, h, w], cols, -1.0, 1.0);
            let bytes: Vec<u8> = px.iter().flat_map(|p| p.to_le_bytes()).collect();
            let img = egui::ColorImage::from_rgba_unmultiplied([cols * w, rows * h], &bytes);
            let t =
                ui.ctx()
                    .load_texture(format!("samples-{id}"), img, egui::TextureOptions::NEAREST);
            ui.ctx().data_mut(|d| d.insert_temp(key, (fp, t.clone())));
            t
        }
    };
    let aspect = (rows * h) as f32 / (cols * w) as f32;
    ui.image((tex.id(), egui::vec2(size, size * aspect)));
}

/// A gallery's rows and columns: its models in the order their cells came, and its step counts
/// in increasing order.
fn models_and_steps(cells: &[GalleryCell]) -> (Vec<String>, Vec<usize>) {
    let mut models: Vec<String> = vec![];
    for c in cells {
        if !models.contains(&c.model) {
            models.push(c.model.clone());
        }
    }
    let mut steps: Vec<usize> = cells.iter().map(|c| c.steps).collect();
    steps.sort();
    steps.dedup();
    (models, steps)
}

/// A column heading: "1 step", "2 steps".
fn steps_heading(k: usize) -> String {
    format!("{k} step{}", if k == 1 { "" } else { "s" })
}

/// The reference row of an image gallery: its PSNR to itself is "infinite" (above 150 dB).
fn is_reference_row(c: &GalleryCell) -> bool {
    c.rmse_to_teacher > 150.0
}

/// Images: one noise's image (sample `index`, clamped) from every model and step count of the
/// gallery, side by side, with a slider for `index`.
fn compare_images(
    ui: &mut egui::Ui,
    index: &mut usize,
    shape: &[usize],
    cells: &[GalleryCell],
    models: &[String],
    steps: &[usize],
) {
    let chw: usize = shape.iter().product();
    let n = cells
        .iter()
        .map(|c| c.samples.len() / chw.max(1))
        .min()
        .unwrap_or(0);
    if n == 0 {
        return;
    }
    ui.horizontal(|ui| {
        ui.label("the same noise, side by side: sample");
        ui.add(egui::Slider::new(index, 0..=n - 1));
    });
    let i = (*index).min(n - 1);
    egui::Grid::new("cmp-images").show(ui, |ui| {
        ui.label("");
        for &k in steps {
            ui.strong(steps_heading(k));
        }
        ui.end_row();
        for m in models {
            ui.strong(m);
            for &k in steps {
                match cells.iter().find(|c| &c.model == m && c.steps == k) {
                    Some(c) => samples_view(
                        ui,
                        &format!("cmp-{m}-{k}"),
                        &c.samples[i * chw..(i + 1) * chw],
                        shape,
                        96.0,
                        None,
                    ),
                    None => {
                        ui.label("");
                    }
                }
            }
            ui.end_row();
        }
    });
}

impl StudioApp {
    pub(super) fn data_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Data");
        ui.label("Where the samples come from. Mixtures come with an exact teacher (the closed-form denoiser).");
        ui.horizontal(|ui| {
            if ui
                .radio(
                    self.data_spec == "toy:ring8",
                    "toy:ring8 — 8 Gaussians on a circle",
                )
                .clicked()
            {
                self.set_data("toy:ring8".into());
            }
        });
        ui.horizontal(|ui| {
            ui.label("mixture spec (JSON):");
            ui.text_edit_singleline(&mut self.mixture_path);
            if ui.button("Load").clicked() {
                self.set_data(format!("gmm:{}", self.mixture_path.trim()));
            }
        });
        ui.horizontal(|ui| {
            if ui
                .radio(
                    self.data_spec == "fashion-mnist",
                    "fashion-mnist — 28x28 garments padded to 32x32 (Debian's dataset-fashion-mnist)",
                )
                .clicked()
            {
                self.set_data("fashion-mnist".into());
            }
        });
        ui.horizontal(|ui| {
            if ui
                .radio(
                    self.data_spec == "emoji",
                    "emoji — 3,788 colour emoji at 32x32 (Debian's fonts-noto-color-emoji)",
                )
                .clicked()
            {
                self.set_data("emoji".into());
            }
        });
        ui.horizontal(|ui| {
            ui.label("image folder (PNG/JPEG; DIR[,SIZE][,grey]):");
            ui.text_edit_singleline(&mut self.image_folder);
            if ui.button("Load").clicked() {
                self.set_data(format!("images:{}", self.image_folder.trim()));
            }
        });
        ui.separator();
        match &self.data_preview {
            Some((spec, shape, pts)) => {
                let d: usize = shape.iter().product::<usize>().max(1);
                if shape.len() == 3 {
                    ui.label(format!(
                        "{spec}: {} images shown, {}x{}x{} (no exact teacher: train or load one in Teacher)",
                        pts.len() / d,
                        shape[0],
                        shape[1],
                        shape[2]
                    ));
                } else {
                    ui.label(format!(
                        "{spec}: {} samples shown, dimension {d} (first two coordinates)",
                        pts.len() / d
                    ));
                }
                let (pts, shape) = (pts.clone(), shape.clone());
                samples_view(ui, "data-preview", &pts, &shape, 420.0, None);
            }
            None => {
                ui.spinner();
            }
        }
    }

    pub(super) fn teacher_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Teacher");
        let images = self.is_images();
        ui.add_enabled_ui(!images, |ui| {
            ui.radio_value(
                &mut self.use_exact_teacher,
                true,
                "exact (closed-form mixture denoiser, the ground truth; mixtures only)",
            );
        });
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.use_exact_teacher, false, "model file:");
            ui.text_edit_singleline(&mut self.teacher_file);
        });
        // the shipped teachers of this data (a diffusers one brings its schedule and student)
        let shipped: Vec<crate::jobs::assets::ManifestEntry> = self
            .manifest
            .iter()
            .filter(|e| e.data == self.data_spec && e.kind == "teacher")
            .cloned()
            .collect();
        if !shipped.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label("shipped:");
                for e in &shipped {
                    let on = !self.use_exact_teacher && self.teacher_file == e.path;
                    if ui.selectable_label(on, e.name.as_str()).clicked() && !on {
                        self.use_teacher(e);
                    }
                }
            });
        }
        if let Some(teacher) = self.teacher_prediction() {
            use crate::engine::model::diffusers::Prediction;
            ui.horizontal(|ui| {
                ui.label(format!(
                    "a diffusers teacher ({} prediction); the student predicts:",
                    teacher.name()
                ));
                ui.radio_value(&mut self.student_prediction, None, "the same");
                for p in [
                    Prediction::VPrediction,
                    Prediction::Sample,
                    Prediction::Epsilon,
                ] {
                    if p != teacher {
                        ui.radio_value(&mut self.student_prediction, Some(p), p.name());
                    }
                }
            });
            if self.student_prediction.is_some_and(|p| p != teacher) {
                ui.horizontal(|ui| {
                    ui.label("re-fitted to the teacher first for");
                    ui.add(
                        egui::DragValue::new(&mut self.refit_samples)
                            .range(0..=50_000_000)
                            .speed(1000),
                    );
                    ui.label("samples (v won on the end-to-end test: docs/diffusers.md)");
                });
            }
        }
        if images {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "or train a UNet teacher (tiny preset) on {} for",
                    self.data_spec
                ));
                ui.add(
                    egui::DragValue::new(&mut self.teacher_samples)
                        .range(64..=100_000_000)
                        .speed(1000),
                );
                ui.label("samples");
                if ui
                    .add_enabled(
                        matches!(self.status, RunStatus::Idle),
                        egui::Button::new("Train teacher"),
                    )
                    .clicked()
                {
                    self.start_teacher();
                }
            });
            ui.label("(progress, loss and live samples in Distill; the finished teacher becomes the model file above)");
        }
        ui.label(format!(
            "A fresh student network is first fitted to the teacher ({} samples, the 'fit' phase, its loss is shown in Distill), as the paper starts from a trained teacher.",
            self.fit_samples
        ));
        ui.horizontal(|ui| {
            ui.label("fit samples");
            ui.add(
                egui::DragValue::new(&mut self.fit_samples)
                    .range(0..=50_000_000)
                    .speed(10_000),
            );
        });
        let preview_steps = if images { 128 } else { 1024 };
        if ui
            .button(format!("Preview the teacher at {preview_steps} steps"))
            .clicked()
            || (!self.teacher_requested && (!images || !self.teacher_file.is_empty()))
        {
            self.preview_teacher();
        }
        // the fit phase trains a network teacher: its loss, live while a run fits one
        let fit: Vec<[f64; 2]> = self
            .losses
            .iter()
            .filter(|l| {
                self.phases.first().map(|p| p == "fit").unwrap_or(false) && l.0 == 0 && l.2 > 0.0
            })
            .map(|l| [l.1 as f64, (l.2 as f64).log10()])
            .collect();
        if !fit.is_empty() {
            ui.label("fit of the network teacher: loss (log10)");
            Plot::new("fit-loss")
                .width(420.0)
                .height(160.0)
                .show(ui, |pui| {
                    pui.line(Line::new("fit", PlotPoints::from(fit)).color(PHASE_COLORS[0]));
                });
        }
        if let Some(cells) = &self.teacher_preview
            && let Some(c) = cells.first()
        {
            if images {
                ui.label(format!(
                    "teacher, {} DDIM steps, {:.2}s",
                    c.steps, c.seconds
                ));
            } else {
                ui.label(format!(
                    "teacher, {} DDIM steps: SW2 to data {:.3}, {:.2}s",
                    c.steps, c.sw2, c.seconds
                ));
            }
            let (s, p) = (c.samples.clone(), c.path.clone());
            let shape = self.sample_shape();
            samples_view(ui, "teacher-preview", &s, &shape, 420.0, Some(&p));
        }
    }

    fn preview_teacher(&mut self) {
        self.teacher_requested = true;
        let spec = if self.use_exact_teacher || self.teacher_file.is_empty() {
            format!("exact:{}", self.data())
        } else {
            self.teacher_file.clone()
        };
        self.session.send(Command::Gallery {
            tag: "teacher".into(),
            data: self.data(),
            models: vec![ModelRef {
                label: "teacher".into(),
                spec,
                max_steps: None,
            }],
            steps: vec![if self.is_images() { 128 } else { 1024 }],
            n: 2000,
            seed: self.seed,
            paths: 16,
        });
    }

    pub(super) fn schedule_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Schedule");
        ui.horizontal(|ui| {
            ui.label("parametrization:");
            let mut param = self.param;
            ui.radio_value(&mut param, Param::Vp, "VP (cosine log-SNR, DDIM teacher)");
            ui.radio_value(
                &mut param,
                Param::Ve,
                "VE / EDM (Karras sigmas, Heun teacher)",
            );
            if param != self.param {
                self.set_param(param);
            }
        });
        ui.horizontal(|ui| {
            ui.label("step counts per phase:");
            ui.add(egui::TextEdit::singleline(&mut self.schedule_text).desired_width(200.0));
            ui.label(if self.param == Param::Vp {
                "e.g. 1024,32,1 (TRACT) — BTD halves from the first to the last"
            } else {
                "e.g. 40,1 (TRACT on the 40-step Karras grid, the default) — BTD halves from the first to the last"
            });
        });
        if let Some(e) = self.schedule_error() {
            ui.colored_label(Color32::from_rgb(200, 40, 40), e);
            return;
        }
        let sched = Schedule::parse(&self.schedule_text).expect("validated");
        let phases = plan(&self.config()).expect("validated");
        ui.label(format!(
            "{} distillation phase(s) with {:?}:",
            phases.iter().filter(|p| p.kind != PhaseKind::Fit).count(),
            self.method
        ));
        egui::Grid::new("phases").striped(true).show(ui, |ui| {
            ui.strong("phase");
            ui.strong("steps");
            ui.strong("group S");
            ui.strong("samples");
            ui.strong("optimizer steps");
            ui.end_row();
            for p in &phases {
                let (steps, group) = match p.kind {
                    PhaseKind::Fit => ("fit to teacher".to_string(), "-".to_string()),
                    PhaseKind::Tract { from, to } | PhaseKind::Btd { from, to } => {
                        (format!("{from} -> {to}"), format!("{}", from / to))
                    }
                };
                ui.label(p.name());
                ui.label(steps);
                ui.label(group);
                ui.label(format!("{}", p.samples));
                ui.label(format!("{}", p.steps));
                ui.end_row();
            }
        });
        ui.separator();
        ui.label("The T-step grid (t = 0 data, t = T noise): each row is a phase; arcs show where the student jumps (group ends).");
        let grid_t = sched.teacher_steps();
        let rows: Vec<(usize, usize)> = phases
            .iter()
            .filter_map(|p| match p.kind {
                PhaseKind::Tract { from, to } | PhaseKind::Btd { from, to } => Some((from, to)),
                PhaseKind::Fit => None,
            })
            .collect();
        let h = 34.0 * rows.len() as f32 + 20.0;
        let (resp, painter) = ui.allocate_painter(
            egui::vec2(ui.available_width().min(1100.0), h),
            egui::Sense::hover(),
        );
        let r = resp.rect;
        let x_of = |t: usize| r.left() + 10.0 + (r.width() - 20.0) * t as f32 / grid_t as f32;
        for (i, &(from, to)) in rows.iter().enumerate() {
            let y = r.top() + 24.0 + 34.0 * i as f32;
            let c = PHASE_COLORS[i % PHASE_COLORS.len()];
            painter.line_segment(
                [egui::pos2(x_of(0), y), egui::pos2(x_of(grid_t), y)],
                Stroke::new(1.0, Color32::GRAY),
            );
            let stride = grid_t / from;
            let tick_every = (from / 128).max(1);
            for t in (0..=from).step_by(tick_every) {
                painter.line_segment(
                    [
                        egui::pos2(x_of(t * stride), y - 3.0),
                        egui::pos2(x_of(t * stride), y + 3.0),
                    ],
                    Stroke::new(1.0, Color32::DARK_GRAY),
                );
            }
            let group = from / to;
            for g in 0..to {
                let (a, b) = (x_of(g * group * stride), x_of((g + 1) * group * stride));
                let mid = egui::pos2((a + b) / 2.0, y - 14.0);
                let pts = vec![egui::pos2(b, y), mid, egui::pos2(a, y)];
                painter.add(egui::Shape::line(pts, Stroke::new(1.6, c)));
            }
            painter.text(
                egui::pos2(r.left() + 12.0, y + 4.0),
                egui::Align2::LEFT_TOP,
                format!("{from} -> {to}"),
                egui::FontId::proportional(11.0),
                c,
            );
        }
        ui.separator();
        let grid = Grid::new(self.param, grid_t);
        let u = |t: usize| t as f64 / grid_t as f64;
        let final_steps = sched.final_steps();
        let (title, curve, stops): (&str, PlotPoints, PlotPoints) = match self.param {
            Param::Vp => {
                ui.label("VP cosine log-SNR λ(u); dots: where the final student steps.");
                let curve = (0..=200)
                    .map(|i| [i as f64 / 200.0, vp_lambda(i as f64 / 200.0)])
                    .collect();
                let stops = grid
                    .path(final_steps)
                    .iter()
                    .map(|&t| [u(t), vp_lambda(u(t))])
                    .collect();
                ("log-SNR", curve, stops)
            }
            Param::Ve => {
                ui.label(format!(
                    "VE Karras noise levels log10 σ_t, t = 1..{grid_t} (ρ = 7, σ from {} to {}; σ_0 = 0 is the data); dots: where the final student steps.",
                    KARRAS_SIGMA_MIN, KARRAS_SIGMA_MAX
                ));
                let log_sigma = |t: usize| grid.coef(t).sigma.log10();
                let curve = (1..=grid_t).map(|t| [u(t), log_sigma(t)]).collect();
                let stops = grid
                    .path(final_steps)
                    .iter()
                    .filter(|&&t| t > 0)
                    .map(|&t| [u(t), log_sigma(t)])
                    .collect();
                ("log10 sigma", curve, stops)
            }
        };
        Plot::new("noise-levels")
            .height(220.0)
            .width(560.0)
            .show(ui, |pui| {
                pui.line(Line::new(title, curve).color(BLUE));
                pui.points(
                    Points::new("student steps", stops)
                        .radius(5.0)
                        .color(PHASE_COLORS[1]),
                );
            });
        // what a teacher step costs: DDIM one network evaluation, Heun two (Euler, then the
        // correction; the last step, to sigma = 0, is Euler only)
        let (solver, evals) = match self.param {
            Param::Vp => ("DDIM: 1 network evaluation per step", grid_t),
            Param::Ve => (
                "Heun: 2 network evaluations per step (Euler, then the correction; the last step, to σ = 0, Euler only)",
                2 * grid_t - 1,
            ),
        };
        ui.label(format!(
            "The teacher's steps: {solver}, so its {grid_t} steps cost {evals} evaluations; the {final_steps}-step student samples with {final_steps} (DDIM)."
        ));
    }

    pub(super) fn distill_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Distill");
        ui.horizontal(|ui| {
            ui.label("method");
            ui.radio_value(&mut self.method, Method::Tract, "TRACT");
            ui.radio_value(&mut self.method, Method::Btd, "BTD");
            ui.separator();
            ui.label("μ_S (self-teacher EMA)");
            ui.add(egui::Slider::new(&mut self.mu_s, 0.0..=0.999));
        });
        ui.horizontal(|ui| {
            ui.label("budget (samples)");
            ui.add(
                egui::DragValue::new(&mut self.train_samples)
                    .range(1..=1_000_000_000)
                    .speed(10_000),
            );
            ui.label("batch");
            ui.add(egui::DragValue::new(&mut self.batch).range(1..=65536));
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.seed));
            ui.label(format!("schedule {}", self.schedule_text));
        });
        let err = self.schedule_error();
        if let Some(e) = &err {
            ui.colored_label(Color32::from_rgb(200, 40, 40), e);
        }
        ui.horizontal(|ui| {
            let start_label = if matches!(self.status, RunStatus::Paused { .. }) {
                "Resume"
            } else {
                "Start"
            };
            if ui
                .add_enabled(self.can_start(), egui::Button::new(start_label))
                .clicked()
            {
                self.start();
            }
            if ui
                .add_enabled(
                    self.status == RunStatus::Running,
                    egui::Button::new("Pause"),
                )
                .clicked()
            {
                self.pause();
            }
            if ui
                .add_enabled(
                    matches!(self.status, RunStatus::Running | RunStatus::Paused { .. }),
                    egui::Button::new("Cancel"),
                )
                .clicked()
            {
                self.cancel();
            }
            if let Some(d) = &self.run_dir {
                ui.label(format!("checkpoints: {}", d.display()));
            }
        });
        let (done, total) = self.progress;
        let frac = if total > 0 {
            done as f32 / total as f32
        } else {
            0.0
        };
        let eta = self
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| (total.saturating_sub(done)) as f64 / r);
        let phase = self
            .losses
            .last()
            .and_then(|l| self.phases.get(l.0))
            .cloned()
            .unwrap_or_default();
        ui.add(egui::ProgressBar::new(frac).text(format!(
            "{phase}  {done}/{total} samples  {}  ETA {}",
            self.rate.map(|r| format!("{r:.0} samples/s")).unwrap_or_default(),
            eta.map(|s| format!("{s:.0}s")).unwrap_or("-".into())
        )));
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.label("loss per phase (log10, running mean)");
                let mut lines: Vec<(usize, Vec<[f64; 2]>)> = vec![];
                let win = (self.losses.len() / 300).max(1);
                for chunk in self.losses.chunks(win) {
                    let ph = chunk[0].0;
                    let m = chunk.iter().map(|l| l.2 as f64).sum::<f64>() / chunk.len() as f64;
                    if m > 0.0 && m.is_finite() {
                        if lines.last().map(|l| l.0) != Some(ph) {
                            lines.push((ph, vec![]));
                        }
                        lines
                            .last_mut()
                            .expect("pushed")
                            .1
                            .push([chunk[0].1 as f64, m.log10()]);
                    }
                }
                Plot::new("loss")
                    .width(560.0)
                    .height(300.0)
                    .legend(Legend::default())
                    .show(ui, |pui| {
                        for (ph, pts) in lines {
                            let name = self
                                .phases
                                .get(ph)
                                .cloned()
                                .unwrap_or(format!("phase {ph}"));
                            pui.line(
                                Line::new(name, PlotPoints::from(pts))
                                    .color(PHASE_COLORS[ph % PHASE_COLORS.len()]),
                            );
                        }
                    });
            });
            ui.vertical(|ui| match &self.live {
                Some((steps, pts)) => {
                    ui.label(format!(
                        "live: current student at {steps} step(s), fixed noise"
                    ));
                    let pts = pts.clone();
                    let shape = self.sample_shape();
                    samples_view(ui, "live", &pts, &shape, 300.0, None);
                }
                None => {
                    ui.label("live samples appear here during a run");
                }
            });
        });
    }

    pub(super) fn gallery_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Gallery");
        ui.label("Rows: models. Columns: step counts. Every cell starts from the same noise; for 2-D data orange lines follow 24 samples from noise to data.");
        let choices = self.data_choices();
        if choices.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("data:");
                for d in choices {
                    if ui.radio(self.data_spec == d, d.as_str()).clicked() && self.data_spec != d {
                        self.set_data(d);
                    }
                }
            });
        }
        // the shipped models come in sets, one per teacher (a gallery compares one set)
        let sets = crate::jobs::assets::sets(&self.manifest, &self.data_spec);
        if sets.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("shipped set:");
                for s in sets {
                    let label = match &s {
                        None => "tract-studio's teacher and its students".to_string(),
                        Some(s) => format!("the {s} teacher and its students"),
                    };
                    if ui.radio(self.gallery_set == s, label).clicked() {
                        self.set_gallery_set(s);
                    }
                }
            });
        }
        // a change of models, steps or seed recomputes the gallery (a running one is dropped)
        let mut changed = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("models:");
            for (m, on) in &mut self.models {
                changed |= ui.checkbox(on, m.label.as_str()).changed();
            }
        });
        ui.horizontal(|ui| {
            ui.label("add model file:");
            ui.text_edit_singleline(&mut self.add_model_path);
            if ui.button("Add").clicked() && !self.add_model_path.trim().is_empty() {
                let p = self.add_model_path.trim().to_string();
                let label = std::path::Path::new(&p)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("model")
                    .to_string();
                self.models.push((
                    ModelRef {
                        label,
                        spec: p,
                        max_steps: None,
                    },
                    true,
                ));
                self.add_model_path.clear();
            }
        });
        ui.horizontal(|ui| {
            ui.label("steps:");
            for (k, on) in &mut self.step_choices {
                changed |= ui.checkbox(on, k.to_string()).changed();
            }
            ui.label("seed:");
            changed |= ui
                .add(egui::DragValue::new(&mut self.seed).range(0..=1_000_000))
                .changed();
            ui.separator();
            ui.checkbox(&mut self.show_paths, "paths");
            ui.add(egui::Slider::new(&mut self.cell_size, 100.0..=320.0).text("zoom"));
            if ui.button("Render").clicked() {
                changed = true;
            }
            if self.gallery_busy {
                self.busy_sign(ui, "computing...");
            }
            if ui
                .add_enabled(self.gallery.is_some(), egui::Button::new("Export PNG"))
                .clicked()
            {
                self.export_gallery();
            }
        });
        if changed {
            self.render_gallery();
        }
        for m in &self.missing {
            ui.colored_label(Color32::from_rgb(220, 70, 60), format!("not loaded: {m}"));
        }
        if self.gallery_wanted {
            ui.horizontal(|ui| {
                self.busy_sign(ui, "");
                ui.label("waiting for the model files...");
            });
        }
        let Some((shape, cells)) = self.gallery.clone() else {
            return;
        };
        let images = shape.len() == 3;
        let (models, steps) = models_and_steps(&cells);
        egui::Grid::new("gallery-grid").show(ui, |ui| {
            ui.label("");
            for &k in &steps {
                ui.strong(steps_heading(k));
            }
            ui.end_row();
            for m in &models {
                ui.strong(m);
                for k in &steps {
                    match cells.iter().find(|c| &c.model == m && c.steps == *k) {
                        Some(c) => {
                            ui.vertical(|ui| {
                                samples_view(
                                    ui,
                                    &format!("g-{m}-{k}"),
                                    &c.samples,
                                    &shape,
                                    self.cell_size,
                                    if self.show_paths { Some(&c.path) } else { None },
                                );
                                let secs = format!(
                                    "{k} step{}: {:.2} s",
                                    if *k == 1 { "" } else { "s" },
                                    c.seconds
                                );
                                if !images {
                                    ui.small(format!(
                                        "{secs}  SW2 {:.3}  RMSE {:.3}",
                                        c.sw2, c.rmse_to_teacher
                                    ));
                                } else if c.rmse_to_teacher.is_nan() {
                                    // a progressive cell: PSNR once the reference row is done
                                    ui.small(secs);
                                } else if is_reference_row(c) {
                                    ui.small(format!("{secs}  reference row"));
                                } else {
                                    ui.small(format!(
                                        "{secs}  PSNR {:.1} dB to the reference",
                                        c.rmse_to_teacher
                                    ));
                                }
                            });
                        }
                        // a finished gallery's empty cell: the model stops below this count
                        None if !self.gallery_busy => {
                            let top = cells
                                .iter()
                                .filter(|c| &c.model == m)
                                .map(|c| c.steps)
                                .max()
                                .unwrap_or(0);
                            ui.weak("-").on_hover_text(format!(
                                "sampled up to {}: a student stops at the step count it was distilled for, a teacher at its grid (a shipped diffusers teacher at its best, 50)",
                                steps_heading(top)
                            ));
                        }
                        None => {
                            ui.label("");
                        }
                    }
                }
                ui.end_row();
            }
        });
    }

    fn export_gallery(&mut self) {
        let Some((shape, cells)) = &self.gallery else {
            return;
        };
        let path = std::path::PathBuf::from("gallery.png");
        if shape.len() == 3 {
            let rows: Vec<crate::jobs::gallery::Row> = cells
                .iter()
                .map(|c| crate::jobs::gallery::Row {
                    label: format!("{}  {} STEPS", c.model, c.steps),
                    model: c.model.clone(),
                    steps: c.steps,
                    images: c.samples.clone(),
                })
                .collect();
            match crate::jobs::gallery::draw(&rows, shape, 2, &path) {
                Ok(()) => self.log.push(format!("exported {}", path.display())),
                Err(e) => self.errors.push(e.to_string()),
            }
            return;
        }
        let dim = &shape[0];
        let panels: Vec<crate::jobs::plot::Panel> = cells
            .iter()
            .map(|c| crate::jobs::plot::Panel {
                title: format!(
                    "{} {}",
                    c.model.split(' ').next().unwrap_or("").to_uppercase(),
                    c.steps
                ),
                subtitle: format!("SW2 {:.3} RMSE {:.3}", c.sw2, c.rmse_to_teacher),
                points: &c.samples,
                dim: *dim,
            })
            .collect();
        match crate::jobs::plot::scatter_panels(&panels, 2.6, &path) {
            Ok(()) => self.log.push(format!("exported {}", path.display())),
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    pub(super) fn compare_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Compare");
        let Some((shape, cells)) = &self.gallery else {
            ui.label("Sliced W2 to fresh data and RMSE to the exact teacher's 1024-step sample from the same noise, against steps (from the gallery): render the gallery first.");
            return;
        };
        let images = shape.len() == 3;
        if images {
            ui.label("Images: PSNR (dB) to the reference row (the first model at its largest step count), from the same noise. `tract-studio eval` gives the classifier-feature FID.");
        } else {
            ui.label("Sliced W2 to fresh data and RMSE to the exact teacher's 1024-step sample from the same noise, against steps (from the gallery).");
        }
        let (models, steps) = models_and_steps(cells);
        if images {
            compare_images(ui, &mut self.compare_index, shape, cells, &models, &steps);
            ui.separator();
        }
        let is_reference = |c: &GalleryCell| images && is_reference_row(c);
        egui::Grid::new("cmp").striped(true).show(ui, |ui| {
            let heads: &[&str] = if images {
                &["model", "steps", "PSNR to reference (dB)", "sampling time"]
            } else {
                &[
                    "model",
                    "steps",
                    "SW2",
                    "RMSE to exact-1024",
                    "sampling time",
                ]
            };
            for h in heads {
                ui.strong(*h);
            }
            ui.end_row();
            for c in cells {
                ui.label(&c.model);
                ui.label(c.steps.to_string());
                if images {
                    ui.label(if is_reference(c) {
                        "reference".to_string()
                    } else {
                        format!("{:.2}", c.rmse_to_teacher)
                    });
                } else {
                    ui.label(format!("{:.4}", c.sw2));
                    ui.label(format!("{:.4}", c.rmse_to_teacher));
                }
                ui.label(format!("{:.3}s", c.seconds));
                ui.end_row();
            }
        });
        let plots: &[(&str, usize)] = if images {
            &[("PSNR (dB) vs log2(steps)", 1)]
        } else {
            &[("SW2 vs log2(steps)", 0), ("RMSE vs log2(steps)", 1)]
        };
        ui.horizontal(|ui| {
            for &(title, f) in plots {
                ui.vertical(|ui| {
                    ui.label(title);
                    Plot::new(title)
                        .width(420.0)
                        .height(260.0)
                        .legend(Legend::default())
                        .show(ui, |pui| {
                            for (i, m) in models.iter().enumerate() {
                                let pts: PlotPoints = cells
                                    .iter()
                                    .filter(|c| &c.model == m && !is_reference(c))
                                    .map(|c| {
                                        [
                                            (c.steps as f64).log2(),
                                            if f == 0 { c.sw2 } else { c.rmse_to_teacher },
                                        ]
                                    })
                                    .collect();
                                let col = PHASE_COLORS[i % PHASE_COLORS.len()];
                                pui.line(Line::new(m.clone(), pts).color(col));
                            }
                        });
                });
            }
        });
    }
}
