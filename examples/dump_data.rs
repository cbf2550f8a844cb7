//! Write a data spec's training images (and held-out ones) to a safetensors file for a peer
//! (benches/peer/train_diffusers_teacher.py --images FILE): `images` [N, C*H*W] f32 in
//! [-1, 1], NCHW order, as tract-studio trains on them, `labels` u8 where the data has them,
//! and `shape` [C, H, W] as i64.
//!
//!     cargo run --release --example dump_data -- emoji train emoji-train.safetensors
use std::collections::HashMap;

use safetensors::{Dtype, tensor::TensorView};
use tract_studio::engine::data::{Data, Source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [spec, split, out] = &a[..] else {
        return Err("usage: dump_data SPEC train|held-out OUT.safetensors".into());
    };
    let data = Data::parse(spec)?;
    let set = match (split.as_str(), &data.source) {
        ("train", Source::Images(s)) => s.clone(),
        ("held-out", Source::Images(_)) => data.held_out()?,
        _ => {
            return Err(
                format!("{spec} {split}: expected image data and train or held-out").into(),
            );
        }
    };
    let px: Vec<u8> = set.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape: Vec<u8> = [set.c, set.h, set.w]
        .iter()
        .flat_map(|&v| (v as i64).to_le_bytes())
        .collect();
    let mut t = HashMap::new();
    t.insert(
        "images".to_string(),
        TensorView::new(Dtype::F32, vec![set.n, set.dim()], &px)?,
    );
    t.insert(
        "shape".to_string(),
        TensorView::new(Dtype::I64, vec![3], &shape)?,
    );
    if let Some(l) = &set.labels {
        t.insert(
            "labels".to_string(),
            TensorView::new(Dtype::U8, vec![set.n], l)?,
        );
    }
    safetensors::serialize_to_file(&t, None, std::path::Path::new(out))?;
    println!("{} images of {}x{}x{} -> {out}", set.n, set.c, set.h, set.w);
    Ok(())
}
