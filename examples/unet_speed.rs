//! Quick timing of one UNet training step on the CPU backend (not a test).
use std::time::Instant;
use tract_studio::diffusion::Times;
use tract_studio::model::{
    flat_from_host,
    unet::{Unet, UnetConfig},
};
use tract_studio::schedule::{Grid, Param};

fn main() {
    let dev = burn::tensor::Device::flex();
    let size = std::env::args().nth(1).unwrap_or_else(|| "small".into());
    let u =
        Unet::new(UnetConfig::preset(&size, 1, 32, 32, Param::Vp).expect("tiny, small or large"));
    println!("parameters: {}", u.layout().total);
    let flat = flat_from_host(u.init(&mut tract_studio::rng::Rng::new(1)), &dev);
    let b = 64;
    let mut rng = tract_studio::rng::Rng::new(3);
    let g = Grid::new(Param::Vp, 1024);
    for it in 0..4 {
        let x = tract_studio::tensors::from_vec2(rng.normals(b * 1024), [b, 1024], &dev);
        let times = Times::new((0..b).map(|i| g.coef(1 + i * 15)).collect(), &dev);
        let t = Instant::now();
        let leaf = flat.clone().autodiff().require_grad();
        let y = u.forward(&leaf, x, &times);
        let loss = (y.clone() * y).mean();
        let grads = loss.backward();
        let gr = leaf.grad(&grads).unwrap();
        let _ = tract_studio::tensors::to_vec(gr.sum());
        println!(
            "step {it}: {:.0} ms (batch {b})",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    let x = tract_studio::tensors::from_vec2(rng.normals(b * 1024), [b, 1024], &dev);
    let times = Times::new((0..b).map(|i| g.coef(1 + i * 15)).collect(), &dev);
    let _ = tract_studio::tensors::to_vec(u.forward(&flat, x, &times).sum());
    println!("forward only: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
}
