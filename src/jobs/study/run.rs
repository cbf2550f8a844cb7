//! Running the study: the learned teacher, the start networks and the reference samples of a
//! tag prepared once, then every missing job of this shard run to its record.

use std::path::PathBuf;

use burn::tensor::Device;

use super::cache::{Baseline, RunRecord, cached, cached_samples, io};
use super::config::{
    CACHE_VERSION, EVAL_NOISE_SEED, Job, LOSS_BINS, StudyConfig, TeacherKind, jobs,
};
use super::plots::write_outputs;
use super::stats::{bin_means, plateau_ratio};
use crate::engine::data::Data;
use crate::engine::diffusion::Solver;
use crate::engine::distill::{DistillConfig, Method, Observer, Run};
use crate::engine::error::{Error, Result};
use crate::engine::eval::{rmse, sliced_w2};
use crate::engine::rng::{Rng, purpose};
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};

/// What a run needs from its tag, prepared once.
pub struct Prepared {
    pub data: Data,
    pub z: Vec<f32>,
    pub fresh: Vec<f32>,
    /// the teacher's 1024-step samples from `z`
    pub reference: Vec<f32>,
    /// the exact sampler's 1024-step samples from `z`
    pub exact_ref: Vec<f32>,
    /// the learned teacher's model file
    pub teacher_file: Option<PathBuf>,
    pub baseline: Baseline,
}

fn no_observer() -> impl Observer {
    |_: &crate::engine::distill::Event| true
}

/// Train (or find) the learned teacher, compute (or find) the reference samples.
pub fn prepare(cfg: &StudyConfig, device: &Device, log: &mut dyn FnMut(&str)) -> Result<Prepared> {
    let data = Data::parse(&cfg.data)?;
    data.exact()?;
    let t = cfg.tag();
    let work = cfg.work.join(&t);
    io(std::fs::create_dir_all(&work), || {
        format!("creating {}", work.display())
    })?;
    let d = data.dim();
    let z = noise(EVAL_NOISE_SEED, cfg.n_eval, d);
    let fresh = data.sample(
        &mut Rng::stream(EVAL_NOISE_SEED, purpose::EVAL_DATA),
        cfg.n_eval,
    );
    let exact_spec = format!("exact:{}", cfg.data);
    log(&format!(
        "{t}: exact reference ({} samples, 1024 steps)",
        cfg.n_eval
    ));
    let exact_ref = cached_samples(
        &work.join(format!("exact-1024-{}.f32", cfg.n_eval)),
        &exact_spec,
        &z,
        1024,
        device,
    )?;
    let teacher_file = match cfg.teacher {
        TeacherKind::Exact => None,
        TeacherKind::Learned => Some(learned_teacher(cfg, &data, device, log)?),
    };
    let spec = teacher_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or(exact_spec.clone());
    let reference = match &teacher_file {
        None => exact_ref.clone(),
        Some(_) => {
            log(&format!(
                "{t}: the learned teacher's reference (1024 steps)"
            ));
            cached_samples(
                &work.join(format!("teacher-1024-{}.f32", cfg.n_eval)),
                &spec,
                &z,
                1024,
                device,
            )?
        }
    };
    let sw = |x: &[f32]| sliced_w2(x, &fresh, d, 256, EVAL_NOISE_SEED);
    let bpath = cfg
        .out
        .join("cache")
        .join(&t)
        .join(format!("baseline-{}.json", cfg.n_eval));
    let baseline = match std::fs::read_to_string(&bpath)
        .ok()
        .and_then(|s| serde_json::from_str::<Baseline>(&s).ok())
        .filter(|b| b.version == CACHE_VERSION)
    {
        Some(b) => b,
        None => {
            let mut teacher_k = vec![];
            for k in [1usize, 2, 4, 8] {
                let s = cached_samples(
                    &work.join(format!("teacher-{k}-{}.f32", cfg.n_eval)),
                    &spec,
                    &z,
                    k,
                    device,
                )?;
                teacher_k.push((k, rmse(&s, &reference), rmse(&s, &exact_ref), sw(&s)));
            }
            let b = Baseline {
                version: CACHE_VERSION,
                tag: t.clone(),
                n_eval: cfg.n_eval,
                teacher_k,
                teacher_1024_sw2: sw(&reference),
                exact_1024_sw2: sw(&exact_ref),
                teacher_1024_rmse_exact: rmse(&reference, &exact_ref),
            };
            io(
                std::fs::create_dir_all(bpath.parent().expect("has a parent")),
                || format!("creating {}", bpath.display()),
            )?;
            crate::engine::error::write_atomic(
                &bpath,
                serde_json::to_string_pretty(&b)
                    .expect("serializes")
                    .as_bytes(),
            )?;
            b
        }
    };
    Ok(Prepared {
        data,
        z,
        fresh,
        reference,
        exact_ref,
        teacher_file,
        baseline,
    })
}

/// The learned MLP teacher of a data set: `OUT/teachers/TAG.safetensors`, trained on the
/// data (seed 0) when missing.
fn learned_teacher(
    cfg: &StudyConfig,
    data: &Data,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let dir = cfg.out.join("teachers");
    let name = data.spec.rsplit(':').next().unwrap_or("data").to_string();
    let path = dir.join(format!("{name}-mlp.safetensors"));
    if path.exists() {
        return Ok(path);
    }
    log(&format!(
        "training the learned teacher for {} ({} samples)",
        data.spec, cfg.teacher_samples
    ));
    let mut c = DistillConfig::new(data, Param::Vp);
    c.method = Method::Teacher;
    c.teacher = "data".into();
    c.fit_samples = cfg.teacher_samples;
    c.train_samples = 0;
    c.batch = cfg.batch;
    c.seed = 0;
    c.ckpt_every = 2000;
    let run_dir = cfg.work.join(format!("teacher-{name}"));
    let resume = run_dir.join(crate::engine::distill::STATE_FILE).exists();
    let mut run = if resume {
        Run::open(&run_dir, device)?
    } else {
        Run::new(c, &run_dir, device)?
    };
    let out = match run.run(resume, &mut no_observer(), None)? {
        crate::engine::distill::Outcome::Finished { student } => student,
        crate::engine::distill::Outcome::Stopped { .. } => return Err(Error::input("stopped")),
    };
    io(std::fs::create_dir_all(&dir), || {
        format!("creating {}", dir.display())
    })?;
    io(std::fs::copy(&out, &path), || {
        format!("copying {}", out.display())
    })?;
    let _ = std::fs::copy(
        run_dir.join("loss.csv"),
        dir.join(format!("{name}-mlp-loss.csv")),
    );
    Ok(path)
}

/// The network of seed `seed` fitted to the exact teacher (cached in the work folder).
fn exact_fit(cfg: &StudyConfig, data: &Data, seed: u64, device: &Device) -> Result<PathBuf> {
    let work = cfg.work.join(cfg.tag());
    let path = work.join(format!("fit-seed{seed}-{}.safetensors", cfg.fit_samples));
    if path.exists() {
        return Ok(path);
    }
    let mut c = DistillConfig::new(data, Param::Vp);
    c.seed = seed;
    c.batch = cfg.batch;
    c.fit_samples = cfg.fit_samples;
    // a one-step TRACT phase after the fit, which is thrown away
    c.schedule = "1024,1".into();
    c.train_samples = 1;
    c.ckpt_every = 1_000_000;
    let dir = work.join(format!("fit-seed{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Run::new(c, &dir, device)?.run_to_end(&mut no_observer())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    io(
        std::fs::copy(dir.join("phase0-fit.safetensors"), &tmp),
        || format!("keeping the fit of {}", dir.display()),
    )?;
    io(std::fs::rename(&tmp, &path), || {
        format!("renaming {}", tmp.display())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(path)
}

/// Run one job to its record.
fn run_job(cfg: &StudyConfig, p: &Prepared, job: &Job, device: &Device) -> Result<RunRecord> {
    let t0 = web_time::Instant::now();
    let mut c = DistillConfig::new(&p.data, Param::Vp);
    c.seed = job.seed;
    c.batch = cfg.batch;
    c.train_samples = job.budget;
    c.fit_samples = 0;
    c.ckpt_every = 2000;
    c.schedule = job.method.schedule(job.steps);
    match &p.teacher_file {
        None => {
            c.init = Some(
                exact_fit(cfg, &p.data, job.seed, device)?
                    .display()
                    .to_string(),
            )
        }
        Some(f) => c.teacher = f.display().to_string(),
    }
    let c = job.method.configure(c)?;
    let last_steps = crate::engine::schedule::Schedule::parse(&c.schedule)?.final_steps();
    if last_steps != job.steps {
        return Err(Error::input(format!(
            "study method '{}' has the schedule {}, which ends at {last_steps} steps, but the students are sampled at {} (--steps)",
            job.method.name, c.schedule, job.steps
        )));
    }
    let dir = cfg
        .work
        .join(cfg.tag())
        .join("runs")
        .join(job.file_name().trim_end_matches(".json"));
    // continue an interrupted run of the same config; start over otherwise
    let resume = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<DistillConfig>(&s).ok())
        .is_some_and(|old| old == c)
        && dir.join(crate::engine::distill::STATE_FILE).exists();
    let mut run = if resume {
        Run::open(&dir, device)?
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        Run::new(c.clone(), &dir, device)?
    };
    let last = run.phases.len() - 1;
    let student = match run.run(resume, &mut no_observer(), None)? {
        crate::engine::distill::Outcome::Finished { student } => student,
        crate::engine::distill::Outcome::Stopped { .. } => return Err(Error::input("stopped")),
    };
    let m = Model::load(&student.display().to_string(), Param::Vp, None, device)?;
    let out = m.sample(&p.z, job.steps, Solver::Ddim, device)?;
    let d = p.data.dim();
    let rmse_32 = match run.phases[..last]
        .iter()
        .position(|ph| ph.to_steps() == Some(32))
    {
        Some(i) => {
            let mid = Model::load(
                &run.phase_file(i).display().to_string(),
                Param::Vp,
                None,
                device,
            )?;
            Some(rmse(
                &mid.sample(&p.z, 32, Solver::Ddim, device)?,
                &p.reference,
            ))
        }
        None => None,
    };
    let losses: Vec<f64> =
        crate::jobs::plot::read_loss_csv(&dir.join(crate::engine::distill::LOSS_FILE))
            .into_iter()
            .filter(|(ph, _)| *ph == last)
            .map(|(_, l)| l as f64)
            .collect();
    let rec = RunRecord {
        version: CACHE_VERSION,
        tag: cfg.tag(),
        data: cfg.data.clone(),
        teacher: cfg.teacher,
        method: job.method.name.clone(),
        schedule: c.schedule.clone(),
        steps: job.steps,
        budget: job.budget,
        seed: job.seed,
        n_eval: cfg.n_eval,
        rmse: rmse(&out, &p.reference),
        rmse_exact: rmse(&out, &p.exact_ref),
        sw2: sliced_w2(&out, &p.fresh, d, 256, EVAL_NOISE_SEED),
        seconds: t0.elapsed().as_secs_f64(),
        final_steps: run.phases[last].steps,
        final_loss: bin_means(&losses, LOSS_BINS),
        plateau: plateau_ratio(&losses),
        rmse_32,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rec)
}

/// Run every missing job of this shard, then rewrite the tables and plots of everything
/// in the cache. Returns the number of runs done now.
pub fn run(cfg: &StudyConfig, device: &Device, log: &mut dyn FnMut(&str)) -> Result<usize> {
    let cache = cfg.out.join("cache").join(cfg.tag());
    io(std::fs::create_dir_all(&cache), || {
        format!("creating {}", cache.display())
    })?;
    let all = jobs(cfg);
    let todo: Vec<(usize, Job)> = all
        .into_iter()
        .enumerate()
        .filter(|(i, j)| i % cfg.shard.1 == cfg.shard.0 && !cached(&cache, j, cfg.n_eval))
        .collect();
    if todo.is_empty() {
        log(&format!("{}: every run is cached", cfg.tag()));
        write_outputs(&cfg.out)?;
        return Ok(0);
    }
    let p = prepare(cfg, device, log)?;
    let n = todo.len();
    for (done, (_, job)) in todo.into_iter().enumerate() {
        // another process may have finished it meanwhile
        if cached(&cache, &job, cfg.n_eval) {
            continue;
        }
        let rec = run_job(cfg, &p, &job, device)?;
        log(&format!(
            "[{}/{n}] {} {} k={} budget {} seed {}: RMSE {:.4} (exact {:.4}) SW2 {:.4} plateau {:.3} ({:.0}s)",
            done + 1,
            rec.tag,
            rec.method,
            rec.steps,
            rec.budget,
            rec.seed,
            rec.rmse,
            rec.rmse_exact,
            rec.sw2,
            rec.plateau,
            rec.seconds
        ));
        crate::engine::error::write_atomic(
            &cache.join(job.file_name()),
            serde_json::to_string_pretty(&rec)
                .expect("serializes")
                .as_bytes(),
        )?;
        write_outputs(&cfg.out)?;
    }
    Ok(n)
}
