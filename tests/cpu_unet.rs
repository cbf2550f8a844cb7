//! The whole UNet (and a short teacher run) with the CPU kernels on and off: the same
//! outputs, gradients and loss curve within tolerance. Its own test binary, because it
//! switches the kernels globally.

mod common;

use std::process::Command;

use burn::tensor::Device;
use tract_studio::diffusion::Times;
use tract_studio::kernels::cpu;
use tract_studio::model::flat_from_host;
use tract_studio::model::unet::{Unet, UnetConfig};
use tract_studio::rng::Rng;
use tract_studio::schedule::{Grid, Param};
use tract_studio::tensors::{from_vec2, to_vec};

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

#[test]
fn unet_forward_and_gradients_match_with_kernels_on_and_off() {
    let dev = Device::flex();
    for param in [Param::Vp, Param::Ve] {
        let u = Unet::new(UnetConfig::tiny(1, 16, 16, param));
        // perturbed weights: the zero-initialised convs would hide most of the network
        let mut rng = Rng::new(5);
        let host: Vec<f32> = u
            .init(&mut Rng::new(1))
            .iter()
            .zip(rng.normals(u.layout().total))
            .map(|(v, e)| v + 0.05 * e)
            .collect();
        let n = 3;
        let xv = rng.normals(n * 256);
        let g = Grid::new(param, if param == Param::Vp { 1024 } else { 40 });
        let t = g.steps;
        let coefs = vec![g.coef(1), g.coef(t / 2), g.coef(t)];
        let run = |on: bool| {
            cpu::set_enabled(on);
            let ad = dev.clone().autodiff();
            let leaf = flat_from_host(host.clone(), &ad).require_grad();
            let times = Times::new(coefs.clone(), &ad);
            let y = u.forward(&leaf, from_vec2(xv.clone(), [n, 256], &ad), &times);
            let loss = (y.clone() * y.clone()).mean();
            let grads = loss.backward();
            (to_vec(y), to_vec(leaf.grad(&grads).unwrap()))
        };
        let (y_on, g_on) = run(true);
        let (y_off, g_off) = run(false);
        cpu::set_enabled(true);
        let (dy, dg) = (max_rel(&y_on, &y_off), max_rel(&g_on, &g_off));
        assert!(dy < 1e-4, "{param:?}: outputs differ by {dy}");
        assert!(dg < 1e-3, "{param:?}: gradients differ by {dg}");
        assert!(g_off.iter().filter(|v| v.abs() > 1e-6).count() > g_off.len() / 2);
    }
}

/// A teacher trained on a tiny generated fixture with TRACT_CPU_KERNELS=1 and =0: the same
/// loss curve within 1e-3 (relative) at every logged step.
#[test]
fn teacher_loss_curve_is_the_same_with_and_without_kernels() {
    let d = std::env::temp_dir().join(format!("tract-cpu-unet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let px = common::squares(32, |k| 200 + k as u8);
    tract_studio::data::idx::write_idx(&d.join("train-images-idx3-ubyte"), &[32, 8, 8], &px, false)
        .unwrap();
    let data = format!("mnist:{}", d.display());
    let curve = |on: &str| {
        let out = d.join(format!("t{on}"));
        let o = Command::new(env!("CARGO_BIN_EXE_tract-studio"))
            .env("TRACT_CPU_KERNELS", on)
            .args([
                "teacher",
                "--data",
                &data,
                "--size",
                "tiny",
                "--train-samples",
                "1600",
            ])
            .args(["--batch", "8", "--device", "cpu", "--out"])
            .arg(&out)
            .output()
            .expect("binary runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        tract_studio::plot::read_loss_csv(&out.join("loss.csv"))
    };
    let (a, b) = (curve("1"), curve("0"));
    assert!(
        a.len() >= 10 && a.len() == b.len(),
        "{} vs {} points",
        a.len(),
        b.len()
    );
    for (i, ((_, la), (_, lb))) in a.iter().zip(&b).enumerate() {
        assert!(
            (la - lb).abs() <= 1e-3 * lb.abs().max(1e-3),
            "step {i}: {la} vs {lb}"
        );
    }
    // it learned something: the loss went down
    assert!(a.last().unwrap().1 < a[0].1);
    let _ = std::fs::remove_dir_all(&d);
}
