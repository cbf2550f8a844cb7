use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::cache::cached;
use super::plots::tick_label;
use super::tables::verdict;
use super::*;
use crate::engine::data::Data;
use crate::engine::distill::{DistillConfig, Method};
use crate::engine::schedule::Param;

#[test]
fn t_quantiles_and_intervals() {
    assert_eq!(t975(7), 2.365);
    // the expansion continues the table smoothly and tends to the normal quantile
    assert!((t975(31) - 2.040).abs() < 0.002, "{}", t975(31));
    assert!((t975(60) - 2.000).abs() < 0.002, "{}", t975(60));
    assert!((t975(100_000) - 1.960).abs() < 0.001);
    // 8 values: mean 4.5, sd sqrt(6), half-width 2.365 * sqrt(6/8)
    let v: Vec<f64> = (1..=8).map(|x| x as f64).collect();
    let (m, h) = mean_ci(&v);
    assert!((m - 4.5).abs() < 1e-12);
    assert!((h - 2.365 * (6.0f64 / 8.0).sqrt()).abs() < 1e-9, "{h}");
    assert!(mean_ci(&[1.0]).1.is_infinite());
}

#[test]
fn tick_labels_keep_small_values_visible() {
    assert_eq!(tick_label(0.119), "0.119");
    assert_eq!(tick_label(0.00021), "0.000210");
    assert_eq!(tick_label(0.021), "0.0210");
    assert_eq!(tick_label(12.5), "12.500");
    assert_eq!(tick_label(3.2e-6), "3.20e-6");
    assert_eq!(tick_label(0.0), "0.000");
}

#[test]
fn loss_bins_and_plateau() {
    let v: Vec<f64> = (0..100).map(|i| i as f64).collect();
    let b = bin_means(&v, 4);
    assert_eq!(b, vec![12.0, 37.0, 62.0, 87.0]);
    assert_eq!(bin_means(&v[..3], 50).len(), 3);
    assert_eq!(plateau_ratio(&vec![2.0; 40]), 1.0);
    // falling 1/x: the last quarter is well below the third
    let f: Vec<f64> = (1..=400).map(|i| 1.0 / i as f64).collect();
    assert!(plateau_ratio(&f) < 0.8);
}

#[test]
fn methods_configure_their_recipes() {
    let data = Data::parse("toy:ring8").unwrap();
    let base = DistillConfig::new(&data, Param::Vp);
    let t = StudyMethod::parse("tract").unwrap();
    assert_eq!(
        t.configure(base.clone()).unwrap().recipe,
        Default::default()
    );
    assert_eq!(t.schedule(1), "1024,32,1");
    let sh = StudyMethod::parse("btd-sh").unwrap();
    let c = sh.configure(base.clone()).unwrap();
    assert_eq!(
        (c.method, c.mu_i, c.recipe.lr_anneal),
        (Method::Btd, Some(0.0), true)
    );
    assert_eq!(sh.schedule(2), "1024,2");
    let e = StudyMethod::parse("tract+eps=1e-3").unwrap();
    assert_eq!(e.configure(base.clone()).unwrap().ema_eps, 1e-3);
    let d = StudyMethod::parse("tract+flat+top=32+sum+clip=2.5+keep-adam").unwrap();
    let c = d.configure(base.clone()).unwrap();
    assert!(c.recipe.flat_weight && c.recipe.loss_sum && c.recipe.keep_adam);
    assert_eq!(c.recipe.final_t_weight, 32.0);
    assert_eq!(c.recipe.clip_x0_range, Some(2.5));
    assert_eq!(d.key(), "tract_flat_top_32_sum_clip_2.5_keep-adam");
    // the schedule tables: another schedule, and a budget per phase
    let t5 = StudyMethod::parse("tract+s=4096/256/16/1").unwrap();
    assert_eq!(t5.schedule(1), "4096,256,16,1");
    assert_eq!(t5.key(), "tract_s_4096_256_16_1");
    let mut b = base.clone();
    b.train_samples = 1000;
    b.schedule = t5.schedule(1);
    let c = t5.configure(b.clone()).unwrap();
    assert_eq!(
        (c.schedule.as_str(), c.train_samples),
        ("4096,256,16,1", 1000)
    );
    let t6 = StudyMethod::parse("btd+per-phase").unwrap();
    b.schedule = t6.schedule(1);
    let c = t6.configure(b).unwrap();
    // 1024 -> 1 by halving: 10 phases of 1000 samples each
    assert_eq!(c.train_samples, 10_000);
    assert_eq!(c.phase_split, Some(vec![1.0; 10]));
    for bad in [
        "trct",
        "tract+top=0",
        "tract+wat",
        "btd+clip=x",
        "tract+s=1/32",
        "tract+s=x",
    ] {
        assert!(StudyMethod::parse(bad).is_err(), "{bad}");
    }
}

fn rec(method: &str, seed: u64, rmse: f64) -> RunRecord {
    RunRecord {
        version: CACHE_VERSION,
        tag: "ring8-exact".into(),
        data: "toy:ring8".into(),
        teacher: TeacherKind::Exact,
        method: method.into(),
        schedule: String::new(),
        steps: 1,
        budget: 1000,
        seed,
        n_eval: 10,
        rmse,
        rmse_exact: rmse,
        sw2: rmse,
        seconds: 0.0,
        final_steps: 1,
        final_loss: vec![1.0, 0.5],
        plateau: 1.0,
        rmse_32: None,
    }
}

#[test]
fn paired_differences_use_matching_seeds() {
    // BTD is worse by exactly 0.1 on every seed, while the seeds themselves vary a lot:
    // the paired difference is -0.1 with a zero-width interval
    let mut recs = vec![];
    for s in 0..8u64 {
        let base = 0.1 + 0.05 * s as f64;
        recs.push(rec("tract", s, base));
        recs.push(rec("btd", s, base + 0.1));
    }
    recs.push(rec("btd", 99, 5.0)); // unpaired: ignored by the difference
    let sum = summarize(&recs, vec![]);
    let d = &sum.diffs[0];
    assert_eq!((d.a.as_str(), d.b.as_str(), d.n), ("tract", "btd", 8));
    assert!(
        (d.rmse.0 + 0.1).abs() < 1e-12 && d.rmse.1 < 1e-9,
        "{:?}",
        d.rmse
    );
    assert_eq!(verdict(d.rmse, "tract", "btd"), "**tract better**");
    assert_eq!(verdict((0.01, 0.02), "a", "b"), "tie (CI spans 0)");
    assert_eq!(verdict((0.05, 0.02), "a", "b"), "**b better**");
    assert_eq!(sum.cells.len(), 2);
    // a variant is compared with its base method too
    let mut more = recs.clone();
    for s in 0..8u64 {
        more.push(rec("tract+flat", s, 0.05 + 0.05 * s as f64));
    }
    let sum = summarize(&more, vec![]);
    let v = sum
        .diffs
        .iter()
        .find(|d| d.a == "tract+flat" && d.b == "tract")
        .unwrap();
    assert!((v.rmse.0 + 0.05).abs() < 1e-12);
    assert!(sum.markdown().contains("tract - btd"));
}

/// A whole (tiny) study: runs, caches, a rerun does nothing, outputs exist; the
/// learned-teacher path trains a teacher and starts the students from it.
fn md_has_stage_column(out: &Path) -> bool {
    let md = std::fs::read_to_string(out.join("tables.md")).unwrap();
    md.contains("| 32-step stage |")
}

#[test]
fn tiny_study_runs_caches_and_resumes() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StudyConfig {
        data: "toy:ring8".into(),
        teacher: TeacherKind::Exact,
        methods: vec![
            StudyMethod::parse("tract").unwrap(),
            StudyMethod::parse("btd-sh").unwrap(),
        ],
        budgets: vec![2048],
        seeds: vec![0, 1],
        steps: vec![1],
        n_eval: 64,
        fit_samples: 1024,
        teacher_samples: 1024,
        batch: 64,
        out: dir.path().join("out"),
        work: dir.path().join("work"),
        shard: (0, 1),
    };
    let mut log = |_: &str| {};
    assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 4);
    assert_eq!(
        run(&cfg, &dev, &mut log).unwrap(),
        0,
        "a rerun skips cached runs"
    );
    let (recs, bases) = load_cache(&cfg.out);
    assert_eq!((recs.len(), bases.len()), (4, 1));
    for r in &recs {
        assert!(r.rmse.is_finite() && r.rmse == r.rmse_exact);
        // BTD 1024,1: 10 phases; the last gets 2048 / 10 samples -> 4 steps at batch 64
        let want = if r.method == "tract" { 27 } else { 4 };
        assert_eq!(r.final_steps, want, "{}", r.method);
        assert_eq!(r.final_loss.len(), want as usize);
        // both schedules pass through 32 steps (TRACT's first phase, BTD's 64 -> 32)
        assert!(r.rmse_32.is_some_and(|v| v.is_finite() && v > 0.0), "{r:?}");
    }
    assert!(md_has_stage_column(&cfg.out));
    // the same seed's start network is shared: the fit of seed 0 exists once
    assert!(
        cfg.work
            .join("ring8-exact/fit-seed0-1024.safetensors")
            .exists()
    );
    for f in [
        "tables.md",
        "study.json",
        "ring8-exact-k1-rmse.png",
        "ring8-exact-k1-diff.png",
    ] {
        assert!(cfg.out.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(cfg.out.join("tables.md")).unwrap();
    assert!(md.contains("tract - btd-sh"), "{md}");
    // extending the seeds runs only the new ones
    cfg.seeds = vec![0, 1, 2];
    assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 2);
    // the learned teacher
    cfg.teacher = TeacherKind::Learned;
    cfg.seeds = vec![0];
    cfg.methods = vec![StudyMethod::parse("tract").unwrap()];
    assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 1);
    assert!(cfg.out.join("teachers/ring8-mlp.safetensors").exists());
    let (recs, _) = load_cache(&cfg.out);
    let r = recs.iter().find(|r| r.tag == "ring8-learned").unwrap();
    assert!(r.rmse != r.rmse_exact);
}

#[test]
fn jobs_are_sharded_and_cached_records_skip() {
    let cfg = StudyConfig {
        data: "toy:ring8".into(),
        teacher: TeacherKind::Exact,
        methods: vec![
            StudyMethod::parse("tract").unwrap(),
            StudyMethod::parse("btd").unwrap(),
        ],
        budgets: vec![2000, 1000],
        seeds: vec![0, 1],
        steps: vec![1],
        n_eval: 10,
        fit_samples: 1,
        teacher_samples: 1,
        batch: 8,
        out: PathBuf::new(),
        work: PathBuf::new(),
        shard: (0, 1),
    };
    let j = jobs(&cfg);
    assert_eq!(j.len(), 8);
    // cheapest budget first, a seed's methods together
    assert_eq!((j[0].budget, j[0].seed, j[1].seed), (1000, 0, 0));
    assert_eq!(j[0].file_name(), "tract-k1-1000-s0.json");
    let dir = tempfile::tempdir().unwrap();
    let r = rec("tract", 0, 0.3);
    std::fs::write(
        dir.path().join(j[0].file_name()),
        serde_json::to_string(&r).unwrap(),
    )
    .unwrap();
    assert!(cached(dir.path(), &j[0], 10));
    assert!(
        !cached(dir.path(), &j[0], 20),
        "another n_eval is not the same run"
    );
    assert!(!cached(dir.path(), &j[1], 10));
    assert_eq!(tag("toy:ring8", TeacherKind::Learned), "ring8-learned");
}
