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
    assert!(res.rows[0].sw2 < 0.08, "exact 1024-step SW2 {}", res.rows[0].sw2);
    assert!(tract.rmse_to_teacher <= 0.4 * teacher1, "TRACT 1-step RMSE {} vs teacher 1-step {}", tract.rmse_to_teacher, teacher1);
    assert!(tract.sw2 <= 0.25, "TRACT 1-step SW2 {}", tract.sw2);
    // BTD must at least beat the 1-step teacher too (it is a working baseline)
    assert!(btd.rmse_to_teacher < teacher1, "BTD {} vs teacher {}", btd.rmse_to_teacher, teacher1);
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
    assert!(tract.rmse_to_teacher <= 0.4 * teacher1, "TRACT {} vs teacher {}", tract.rmse_to_teacher, teacher1);
    assert!(tract.max_weight_error < 0.1, "mode weights off by {}", tract.max_weight_error);
}
