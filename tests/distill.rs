//! Distillation acceptance at a reduced budget: on toy:ring8 and on a mixture written
//! here (other weights, stds, dimension), TRACT 1-step students land near the exact
//! 1024-step sampler from the same noise, far nearer than the teacher's own 1 step.

use burn::tensor::Device;
use tract_studio::demo::{DemoConfig, run};
use tract_studio::distill::Event;

fn quiet(_: &Event) -> bool {
    true
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tract-acc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn tract_on_ring8_at_reduced_budget() {
    let cfg = DemoConfig {
        out: tmp("ring8"),
        fit_samples: 400_000,
        train_samples: 800_000,
        n_eval: 10_000,
        two_step: false,
        ..Default::default()
    };
    let res = run(&cfg, &Device::flex(), &mut quiet).unwrap();
    eprintln!("{}", res.table());
    let teacher1 = res.rows[1].rmse_to_teacher;
    let tract = res.row("TRACT");
    let btd = res.row("BTD");
    assert!(
        res.rows[0].sw2 < 0.08,
        "exact 1024-step SW2 {}",
        res.rows[0].sw2
    );
    assert!(
        tract.rmse_to_teacher <= 0.4 * teacher1,
        "TRACT 1-step RMSE {} vs teacher 1-step {}",
        tract.rmse_to_teacher,
        teacher1
    );
    assert!(tract.sw2 <= 0.25, "TRACT 1-step SW2 {}", tract.sw2);
    // BTD must at least beat the 1-step teacher too (it is a working baseline)
    assert!(
        btd.rmse_to_teacher < teacher1,
        "BTD {} vs teacher {}",
        btd.rmse_to_teacher,
        teacher1
    );
    assert!(cfg.out.join("demo.png").exists());
}

#[test]
fn tract_on_an_unequal_3d_mixture() {
    let dir = tmp("mix3");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("mix.json");
    std::fs::write(
        &spec,
        r#"{"components": [
            {"weight": 0.6, "mean": [1.0, 0.0, -0.5], "std": 0.25},
            {"weight": 0.3, "mean": [-1.0, 0.8, 0.5], "std": 0.4},
            {"weight": 0.1, "mean": [0.0, -1.2, 1.0], "std": 0.1}]}"#,
    )
    .unwrap();
    let cfg = DemoConfig {
        data: format!("gmm:{}", spec.display()),
        out: dir.join("out"),
        fit_samples: 400_000,
        train_samples: 800_000,
        n_eval: 10_000,
        two_step: false,
        ..Default::default()
    };
    let res = run(&cfg, &Device::flex(), &mut quiet).unwrap();
    eprintln!("{}", res.table());
    let teacher1 = res.rows[1].rmse_to_teacher;
    let tract = res.row("TRACT");
    assert!(
        tract.rmse_to_teacher <= 0.4 * teacher1,
        "TRACT {} vs teacher {}",
        tract.rmse_to_teacher,
        teacher1
    );
    assert!(
        tract.max_weight_error < 0.1,
        "mode weights off by {}",
        tract.max_weight_error
    );
}

#[test]
fn tract_ve_edm_path() {
    // VE (Karras sigmas, Heun teacher, EDM preconditioning, eq 14/15) through the CLI engine
    use tract_studio::diffusion::Solver;
    use tract_studio::distill::{DistillConfig, Outcome, Run};
    use tract_studio::generate::{Model, noise};
    use tract_studio::schedule::Param;
    let dev = Device::flex();
    let data = tract_studio::data::Data::parse("toy:ring8").unwrap();
    let mut cfg = DistillConfig::new(&data, Param::Ve);
    assert_eq!(cfg.schedule, "40,8,1");
    cfg.fit_samples = 300_000;
    cfg.train_samples = 500_000;
    let dir = tmp("ve");
    let mut run = Run::new(cfg, &dir, &dev).unwrap();
    let Outcome::Finished { student } = run.run(false, &mut quiet, None).unwrap() else {
        panic!()
    };
    let z = noise(1, 4000, 2);
    let exact = Model::load("exact:toy:ring8", Param::Ve, Some(40), &dev).unwrap();
    let reference = exact.sample(&z, 40, Solver::Heun, &dev).unwrap();
    let t1 = exact.sample(&z, 1, Solver::Ddim, &dev).unwrap();
    let s1 = Model::load(student.to_str().unwrap(), Param::Ve, None, &dev)
        .unwrap()
        .sample(&z, 1, Solver::Ddim, &dev)
        .unwrap();
    let (rt, rs) = (
        tract_studio::eval::rmse(&t1, &reference),
        tract_studio::eval::rmse(&s1, &reference),
    );
    eprintln!("VE: teacher 1 step RMSE {rt:.4}, TRACT 1 step RMSE {rs:.4}");
    assert!(rs < 0.5 * rt, "VE TRACT {rs} vs teacher {rt}");
}
